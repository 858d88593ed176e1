"""Why the article loss stalls: each loss's gradient as a function of the wrong class's probability.

Write ``p`` for the probability the model gives the complementary class (the class an image
is *not*). The losses below depend on the logits only through ``p``, so by the chain rule
their gradient with respect to the logits is

.. math:: \\frac{\\partial L}{\\partial f} = L'(p)\\, p\\, (e_{\\bar y} - \\mathbf{p}),

and when the other ``K - 1`` classes share ``1 - p`` equally its length is

.. math:: \\left\\lVert \\frac{\\partial L}{\\partial f} \\right\\rVert
          = |L'(p)|\\; p (1 - p) \\sqrt{\\tfrac{K}{K - 1}}.

For SCL-NL and forward, ``L = -log(1 - p)`` (+ a constant), ``L' = 1 / (1 - p)`` cancels the
factor ``1 - p``, and the gradient *grows* with ``p``: the more confidently wrong, the harder
the push. For the article loss, ``L = p / (1 + p)`` and ``L' = 1 / (1 + p)^2``: the gradient
vanishes as ``p -> 1``, so an image the model has confidently put in the wrong class gets
almost no correction. SCL-EXP (``exp(p)``) saturates the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from helpers.plots import DPI  # importing plots also lets IPython show bare Figures

Floats = NDArray[np.float64]

# dL/dp of the losses that depend on the complementary class's probability alone.
DERIVATIVES: dict[str, Callable[[Floats], Floats]] = {
    "article": lambda p: 1.0 / (1.0 + p) ** 2,
    "scl_nl": lambda p: 1.0 / (1.0 - p),
    "forward": lambda p: 1.0 / (1.0 - p),  # -log((1 - p) / (K - 1)): SCL-NL plus a constant
    "scl_exp": lambda p: np.exp(p),
}


def logit_gradient_norm(loss: str, p: ArrayLike, num_classes: int = 3) -> Floats:
    """Length of ``dL/dlogits`` for complementary-class probability ``p`` (others equal).

    Raises
    ------
    ValueError
        For a loss that does not depend on ``p`` alone (``pc``, ``nn``: use autodiff), or a
        ``p`` outside ``[0, 1)``.
    """
    if loss not in DERIVATIVES:
        raise ValueError(
            f"No closed form for {loss!r}; losses of p alone: {', '.join(DERIVATIVES)}."
        )
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p >= 1)):
        raise ValueError("p must lie in [0, 1): it is a probability short of certainty.")
    spread = np.sqrt(num_classes / (num_classes - 1))
    norm: Floats = np.abs(DERIVATIVES[loss](p)) * p * (1 - p) * spread
    return norm


def plot_gradient_vs_p(
    losses: Sequence[str] = ("article", "scl_nl", "scl_exp"),
    num_classes: int = 3,
    stuck: float = 0.9,
    dpi: int = DPI,
) -> Figure:
    """Gradient length against ``p`` per loss, with the "stuck" region ``p > stuck`` shaded."""
    p = np.linspace(0.0, 0.995, 400)
    fig = Figure(figsize=(6.4, 3.4), dpi=dpi)
    ax = fig.add_subplot()
    for loss in losses:
        label = "scl_nl = forward" if loss == "scl_nl" else loss
        ax.plot(p, logit_gradient_norm(loss, p, num_classes), label=label)
    ax.axvspan(stuck, 1.0, color="0.85", zorder=0, label=f"stuck: p > {stuck}")
    ax.set(
        xlabel="p = probability of the complementary (wrong) class",
        ylabel="length of dL/dlogits",
        title=f"How hard each loss pushes back (K = {num_classes})",
        xlim=(0, 1),
        ylim=(0, None),
    )
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
