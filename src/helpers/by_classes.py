"""Test accuracy against the number of classes ``K``: the four-class chapter's table and figure.

``scripts/sweep_losses.py`` records each run with its class list, so the runs of ``K = 2, 3, 4``
are told apart by their settings, never by hand-typed numbers. :func:`accuracy_by_k` groups
them per loss and ``K``; :func:`format_by_k` and :func:`plot_accuracy_by_k` show them beside
chance and the published references.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from helpers.agreement import Estimate, mean_ci
from helpers.classes import chance
from helpers.experiment import REFERENCE
from helpers.plots import DPI, LABEL_SIZE  # importing plots also lets IPython show bare Figures
from helpers.runs import RunSpec

# Published four-class references. The original study reports "about 60%" for its
# complementary model with Motorbikes added; the same author's CIFAR-10 notebooks give
# (ordinary, complementary) accuracy at three and four classes.
ORIGINAL_FOUR_CLASSES = 0.60
CIFAR = {3: (0.914, 0.859), 4: (0.848, 0.621)}

LOSS_ORDER = (REFERENCE, "article", "pc", "nn", "forward", "scl_nl", "scl_exp")


@dataclass(frozen=True)
class KResult:
    """One loss at one ``K``: true test accuracy per seed, and where the runs came from."""

    loss: str
    k: int
    classes: tuple[str, ...]
    seeds: tuple[int, ...]
    accuracies: tuple[float, ...]
    precisions: tuple[str, ...]
    devices: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of seeds recorded."""
        return len(self.seeds)

    @property
    def sd(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        return float(np.std(self.accuracies, ddof=1)) if self.n > 1 else 0.0

    @property
    def estimate(self) -> Estimate:
        """Mean with a Student-t 95% interval over seeds, clipped to [0, 1]."""
        return mean_ci(self.accuracies, bounds=(0.0, 1.0))


def accuracy_by_k(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], KResult]:
    """Group sweep rows (``helpers.experiment.load_sweep``) by loss and number of classes.

    Returns ``{(loss, K): KResult}`` in the book's loss order, then by ``K``.

    Raises
    ------
    ValueError
        If one loss has runs on two different class lists of the same ``K`` (say two
        different pairs): their accuracies are not one quantity, so pass one list per ``K``.
    """
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        classes = tuple(row["classes"])
        groups.setdefault((row["loss"], len(classes)), []).append(row)
    results = {}
    for (loss, k), mine in groups.items():
        lists = {tuple(r["classes"]) for r in mine}
        if len(lists) > 1:
            raise ValueError(
                f"{loss} at K = {k} has runs on different classes {sorted(lists)}: load one "
                "class list per K (load_sweep(..., classes=...))"
            )
        mine = sorted(mine, key=lambda r: int(r["seed"]))
        results[(loss, k)] = KResult(
            loss,
            k,
            lists.pop(),
            tuple(int(r["seed"]) for r in mine),
            tuple(float(r["true_accuracy"]) for r in mine),
            tuple(str(r.get("precision", "float32")) for r in mine),
            tuple(str(r.get("device", "?")) for r in mine),
        )
    rank = {loss: i for i, loss in enumerate(LOSS_ORDER)}
    return dict(sorted(results.items(), key=lambda item: (rank.get(item[0][0], 99), item[0])))


def format_by_k(results: Mapping[tuple[str, int], KResult]) -> str:
    """One line per loss and ``K``: seeds, mean ± sd, t-interval, chance and each seed's score."""
    lines = [
        f"{'loss':<13}{'K':>2}  {'n':>2}  {'mean ± sd':>15}  {'95% t-interval':>17}  "
        f"{'chance':>6}  per seed"
    ]
    for r in results.values():
        e = r.estimate
        interval = "no interval" if np.isnan(e.low) else f"{e.low:.1%} to {e.high:.1%}"
        seeds = ", ".join(f"{a:.1%}" for a in r.accuracies)
        lines.append(
            f"{r.loss:<13}{r.k:>2}  {r.n:>2}  {e.mean:>6.1%} ± {r.sd:>5.1%}  {interval:>17}  "
            f"{chance(r.k):>6.1%}  {seeds}"
        )
    return "\n".join(lines)


def format_references() -> str:
    """The published references the chapter compares with, from :data:`CIFAR` and the original."""
    cifar = "; ".join(
        f"{k} classes {ordinary:.1%} / {complementary:.1%}"
        for k, (ordinary, complementary) in sorted(CIFAR.items())
    )
    return (
        f"original study, 4 classes, complementary: about {ORIGINAL_FOUR_CLASSES:.0%}\n"
        f"CIFAR-10 notebooks, ordinary / complementary: {cifar}"
    )


def provenance(results: Mapping[tuple[str, int], KResult]) -> str:
    """Per ``K``: its class list, and the precisions and devices its runs used."""
    lines = []
    for k in sorted({k for _, k in results}):
        mine = [r for (_, kk), r in results.items() if kk == k]
        precisions = sorted({p for r in mine for p in r.precisions})
        devices = sorted({d for r in mine for d in r.devices})
        lines.append(
            f"K = {k}: {', '.join(mine[0].classes)}; {', '.join(precisions)} on {'; '.join(devices)}"
        )
    return "\n".join(lines)


def cost_of_a_class(
    results: Mapping[tuple[str, int], KResult], loss: str, k_from: int = 3, k_to: int = 4
) -> float:
    """How many points of mean true accuracy ``loss`` loses from ``k_from`` to ``k_to`` classes.

    Raises
    ------
    KeyError
        When either ``K`` has no run of ``loss``.
    """
    missing = [k for k in (k_from, k_to) if (loss, k) not in results]
    if missing:
        raise KeyError(f"no {loss} runs at K = {missing}: run them with scripts/sweep_losses.py")
    return results[(loss, k_from)].estimate.mean - results[(loss, k_to)].estimate.mean


def missing_runs(specs: Iterable[RunSpec], rows: Iterable[Mapping[str, Any]]) -> list[RunSpec]:
    """The runs of a queue (``helpers.runs.parse_runs``) that no recorded row matches.

    A row matches a run with the same loss, seed and class list; queue runs with profile
    overrides never match (this chapter's runs have none).
    """
    done = {(r["loss"], int(r["seed"]), tuple(r["classes"])) for r in rows}
    return [
        spec
        for spec in specs
        if spec.overrides or (spec.loss, spec.seed, tuple(spec.classes)) not in done
    ]


def describe_change(drop: float) -> str:
    """A drop in accuracy (a fraction, as :func:`cost_of_a_class` returns) in words.

    ``0.076`` reads ``"7.6 points lower"``, ``-0.008`` ``"0.8 points higher"``, and a change
    that rounds to zero ``"unchanged"``.
    """
    points = round(100 * drop, 1)
    if points == 0:
        return "unchanged"
    return f"{abs(points):.1f} points {'lower' if points > 0 else 'higher'}"


def plot_accuracy_by_k(
    results: Mapping[tuple[str, int], KResult],
    losses: Sequence[str] | None = None,
    dpi: int = DPI,
) -> Figure:
    """True test accuracy against ``K`` per loss (seeds as dots, mean ± sd), chance and references.

    Chance ``1/K`` is a dashed curve; the original's ~60% at ``K = 4`` is a star. The CIFAR-10
    references come from another data set and another network, so they get a panel of their
    own to the right (grey triangles: ordinary labels up, complementary down), on the same
    accuracy scale but never on the axes of our points. Each loss's line has ``gid``
    ``"loss=<loss>"``; the legend sits below the panels, outside the data.
    """
    shown = losses or list(dict.fromkeys(loss for loss, _ in results))
    ks = sorted({k for _, k in results})
    if not ks:
        raise ValueError("no runs to plot: run scripts/sweep_losses.py first")
    fig = Figure(figsize=(7.6, 4.8), dpi=dpi, layout="constrained")
    ax, ref = fig.subplots(1, 2, sharey=True, width_ratios=[3, 1])
    offsets = np.linspace(-0.12, 0.12, max(len(shown), 1))
    for offset, loss in zip(offsets, shown, strict=True):
        mine = [results[(loss, k)] for k in ks if (loss, k) in results]
        if not mine:
            continue
        x = np.array([r.k for r in mine]) + offset
        means = [r.estimate.mean for r in mine]
        (line,) = ax.plot(x, means, "-", marker="s", ms=5, label=loss, gid=f"loss={loss}")
        ax.errorbar(x, means, yerr=[r.sd for r in mine], fmt="none", color=line.get_color())
        for xi, r in zip(x, mine, strict=True):
            ax.scatter([xi] * r.n, r.accuracies, s=10, color=line.get_color(), alpha=0.5)
    grid = np.linspace(min(ks) - 0.3, max(ks) + 0.3, 50)
    ax.plot(grid, 1 / grid, "--", color="0.4", lw=1, label="chance: 1/K")
    ax.plot([4], [ORIGINAL_FOUR_CLASSES], "*", color="k", ms=12, label="original, 4 classes")
    ax.set_title("Caltech101, this book's models", fontsize=LABEL_SIZE)
    cifar_k = sorted(CIFAR)
    ref.plot(
        cifar_k, [CIFAR[k][0] for k in cifar_k], "^:", color="0.55", label="CIFAR-10, ordinary"
    )
    ref.plot(
        cifar_k, [CIFAR[k][1] for k in cifar_k], "v:", color="0.55", label="CIFAR-10, complementary"
    )
    ref.set_title("CIFAR-10 (another\ndata set, for reference)", fontsize=LABEL_SIZE - 1)
    ref.set_xticks(cifar_k)
    ref.set_xlim(min(cifar_k) - 0.5, max(cifar_k) + 0.5)
    ref.set_xlabel("K", fontsize=LABEL_SIZE)
    ax.set_xticks(ks)
    ax.set_xlabel("number of classes K", fontsize=LABEL_SIZE)
    ax.set_ylabel("true test accuracy", fontsize=LABEL_SIZE)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    handles = [h for a in (ax, ref) for h in a.get_legend_handles_labels()[0]]
    fig.legend(
        handles=handles, frameon=False, fontsize=LABEL_SIZE - 3, loc="outside lower center",
        ncols=4,
    )  # fmt: skip
    return fig
