r"""What one label is worth as the number of classes ``K`` grows, and what pseudo accuracy hides.

With the true class :math:`Y` uniform over :math:`K` classes, an ordinary label names it and
carries :math:`I = \log_2 K` bits. A uniform complementary label only rules out one of the
:math:`K - 1` other classes: it leaves :math:`K - 1` equally likely candidates, so

.. math:: I(Y; \bar Y) = H(Y) - H(Y \mid \bar Y) = \log_2 K - \log_2 (K - 1).

At ``K = 2`` both are 1 bit (ruling out one of two classes *names* the other); from ``K = 3`` on
the complementary label is worth ever less, about :math:`1 / (K \ln 2)` bits for large ``K``.

A model of true accuracy ``a`` scores :func:`helpers.complementary.expected_pseudo_accuracy`
on complementary labels; :func:`plot_pseudo_vs_true` draws that relation for several ``K``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib.figure import Figure

from helpers.complementary import expected_pseudo_accuracy
from helpers.plots import DPI, LABEL_SIZE  # importing plots also lets IPython show bare Figures

EXPERIMENT_KS = (2, 3, 4)
"""The numbers of classes the book trains on: a pair, the original three, and four."""


def _check(num_classes: int) -> int:
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2 (got {num_classes!r}): with one class there "
            "is nothing to tell apart, and no other class for a complementary label to name."
        )
    return int(num_classes)


def _checked_list(ks: Iterable[int], caller: str) -> list[int]:
    checked = [_check(k) for k in ks]
    if not checked:
        raise ValueError(f"{caller} needs at least one number of classes.")
    return checked


def chance(num_classes: int) -> float:
    """True accuracy of a guess that ignores the image: ``1 / K`` (classes equally frequent)."""
    return 1.0 / _check(num_classes)


def label_information(num_classes: int) -> tuple[float, float]:
    """Bits one label tells about a true class drawn uniformly from ``K`` classes.

    Parameters
    ----------
    num_classes
        Number of classes ``K`` (at least 2).

    Returns
    -------
    tuple of float
        ``(ordinary, complementary)``: the mutual information between the true class and its
        ordinary label, ``log2 K``, and a uniform complementary label, ``log2 K - log2(K - 1)``.

    Raises
    ------
    ValueError
        If ``num_classes`` is not an integer of at least 2.
    """
    k = _check(num_classes)
    ordinary = float(np.log2(k))
    return ordinary, ordinary - float(np.log2(k - 1))


def labels_for_one_label(num_classes: int) -> float:
    """How many complementary labels weigh as much as one ordinary label, in bits.

    A back-of-envelope measure: the ratio of the two informations of
    :func:`label_information` (1 at ``K = 2``, about 2.7 at ``K = 3``, 4.8 at ``K = 4``).
    Independent complementary labels of one image can repeat a class already ruled out, so
    their bits add up to *at most* the sum: the ratio is a lower bound on the labels needed.
    To pin the class down for certain takes, on average, the coupon collector's
    ``(K - 1) (1 + 1/2 + ... + 1/(K - 1))`` draws (3 at ``K = 3``, 5.5 at ``K = 4``).

    Raises
    ------
    ValueError
        If ``num_classes`` is not an integer of at least 2.
    """
    ordinary, complementary = label_information(num_classes)
    return ordinary / complementary


def plot_information(ks: Iterable[int] = range(2, 11), dpi: int = DPI) -> Figure:
    """Bits per label against ``K``, ordinary and complementary, with the book's ``K`` marked."""
    kk = _checked_list(ks, "plot_information")
    bits = np.array([label_information(k) for k in kk])
    fig = Figure(figsize=(6.4, 3.4), dpi=dpi)
    ax = fig.add_subplot()
    ax.plot(kk, bits[:, 0], "o-", ms=4, label="ordinary label: log2 K")
    ax.plot(kk, bits[:, 1], "o-", ms=4, label="complementary label: log2 K - log2(K - 1)")
    # Ring the points of the experiments, on both curves, so the chapter can refer to them.
    marked = [i for i, k in enumerate(kk) if k in EXPERIMENT_KS]
    if marked:
        ax.scatter(
            np.repeat([kk[i] for i in marked], 2),
            bits[marked].ravel(),
            s=110,
            facecolors="none",
            edgecolors="k",
            zorder=3,
            label=f"the book's experiments (K = {', '.join(str(kk[i]) for i in marked)})",
        )
    ax.set_xlabel("number of classes K", fontsize=LABEL_SIZE)
    ax.set_ylabel("bits about the true class", fontsize=LABEL_SIZE)
    ax.set_title("What one label tells", fontsize=LABEL_SIZE)
    ax.set_xticks(kk)
    ax.set_ylim(0, None)
    ax.legend(frameon=False, fontsize=LABEL_SIZE - 2)
    fig.tight_layout()
    return fig


def plot_pseudo_vs_true(ks: Iterable[int] = (2, 3, 4), dpi: int = DPI) -> Figure:
    """Expected pseudo accuracy against true accuracy ``a`` per ``K``, chance (``a = 1/K``) marked.

    Each ``K``'s line has ``gid`` ``"K=<K>"`` and its chance marker ``"chance K=<K>"``. At
    ``K = 2`` the line is ``pseudo = a``: the complementary label is the true label's twin.
    """
    kk = _checked_list(ks, "plot_pseudo_vs_true")
    a = np.linspace(0.0, 1.0, 101)
    fig = Figure(figsize=(6.4, 3.6), dpi=dpi)
    ax = fig.add_subplot()
    for k in kk:
        pseudo = [expected_pseudo_accuracy(float(x), k) for x in a]
        label = f"K = {k}" + (": pseudo = true" if k == 2 else "")
        (line,) = ax.plot(a, pseudo, label=label, gid=f"K={k}")
        c = chance(k)
        marker = expected_pseudo_accuracy(c, k)
        ax.plot([c], [marker], "o", color=line.get_color(), ms=7, gid=f"chance K={k}")
    # One legend entry for every chance marker; a grey proxy keeps it colour-neutral.
    ax.plot([], [], "o", color="0.4", label="chance: a = 1/K, pseudo = (K - 1)/K")
    ax.set_xlabel("true accuracy a", fontsize=LABEL_SIZE)
    ax.set_ylabel("expected pseudo accuracy", fontsize=LABEL_SIZE)
    ax.set_title(
        "Pseudo accuracy runs ahead of true accuracy, more so as K grows", fontsize=LABEL_SIZE
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(frameon=False, fontsize=LABEL_SIZE - 2, loc="lower right")
    fig.tight_layout()
    return fig
