"""The gap to the original study: ablation arms, their recorded runs, a table and a figure.

An *arm* changes one factor of the laptop settings (the image size, the learning rate, the
patience, what early stopping watches) and trains the article loss (or cross-entropy, as the
control) with it. ``scripts/sweep_losses.py`` records every run in the results store under
``complementary_sweep/<loss>/seed<k>[/<overrides>]``; this module gathers an arm's runs by
their settings, never by hand-typed numbers, and says how much of the gap each arm closes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from helpers.complementary import STUCK_THRESHOLD
from helpers.experiment import SWEEP_CHAPTER
from helpers.plots import DPI  # importing plots also lets IPython show bare Figures
from helpers.profiles import get_profile, override_profile, override_tag
from helpers.results import load_results

# The original study's test accuracies (one run each, 299 px, three classes).
ORIGINAL = {"crossentropy": 0.9375, "article": 0.9141}


@dataclass(frozen=True)
class Arm:
    """One setting of the ablation: a loss trained with some profile fields overridden."""

    label: str
    factor: str
    loss: str = "article"
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def run_line(self, seed: int) -> str:
        """The arm's line in a run queue (``helpers.runs``), e.g. for the note's commands."""
        parts = [f"loss={self.loss}", f"seed={seed}"]
        return " ".join(parts + [f"{k}={v}" for k, v in self.overrides.items()])

    def key(self, seed: int, profile: str = "laptop", precision: str = "float32") -> str:
        """The results-store key of the arm's run of ``seed`` (e.g. for :func:`recorded_curve`)."""
        from helpers.runs import parse_run

        return parse_run(self.run_line(seed)).key(get_profile(profile), precision)


ARMS: tuple[Arm, ...] = (
    Arm("laptop settings (96 px)", "baseline"),
    Arm("160 px", "(a) image size", overrides={"image_size": 160}),
    Arm("299 px", "(a) image size", overrides={"image_size": 299}),
    Arm("learning rate 1e-4", "(b) learning rate", overrides={"learning_rate": 1e-4}),
    # 30 times smaller steps need many more epochs: the original allowed up to 1000.
    Arm(
        "learning rate 1e-5, up to 150 epochs",
        "(b) learning rate",
        overrides={"learning_rate": 1e-5, "max_epochs": 150},
    ),
    Arm("patience 15", "(c) patience", overrides={"patience": 15}),
    Arm("stopping on the test set", "(d) early stopping", overrides={"stop_on": "test"}),
    Arm(
        "original recipe (299 px, 1e-5, test stop)",
        "(e) original recipe",
        overrides={
            "image_size": 299,
            "learning_rate": 1e-5,
            "patience": 3,
            "stop_on": "test",
            "max_epochs": 200,
        },
    ),
    Arm("4 outputs for 3 classes", "(f) output head", overrides={"extra_outputs": 1}),
    Arm("regular, 96 px", "control", "crossentropy"),
    Arm("regular, 160 px", "control", "crossentropy", {"image_size": 160}),
    Arm("regular, 299 px", "control", "crossentropy", {"image_size": 299}),
)


@dataclass(frozen=True)
class Unfinished:
    """A run a time budget stopped (``sweep_losses.py --hours``): how far it got."""

    seed: int
    accuracy: float  # true test accuracy of its best epoch so far
    epochs: int
    max_epochs: int
    wall_s: float

    def describe(self) -> str:
        """E.g. ``"stopped after 12 of at most 200 epochs (0.9 h): 70.3% so far"``."""
        return (
            f"stopped after {self.epochs} of at most {self.max_epochs} epochs "
            f"({self.wall_s / 3600:.1f} h): {self.accuracy:.1%} so far"
        )


@dataclass(frozen=True)
class ArmResult:
    """An arm's recorded runs: true test accuracy, epochs and wall time per seed.

    Only finished runs count in ``seeds``, ``accuracies`` and the statistics; runs a time
    budget stopped are kept apart in ``unfinished``.
    """

    arm: Arm
    seeds: tuple[int, ...]
    accuracies: tuple[float, ...]
    epochs: tuple[int, ...]
    wall_s: tuple[float, ...] = ()
    unfinished: tuple[Unfinished, ...] = ()

    @property
    def n(self) -> int:
        """Number of finished runs (seeds)."""
        return len(self.seeds)

    @property
    def mean(self) -> float:
        """Mean true test accuracy over seeds (NaN without runs)."""
        return float(np.mean(self.accuracies)) if self.n else float("nan")

    @property
    def minutes(self) -> float:
        """Mean wall time of a run, in minutes (NaN without runs)."""
        return float(np.mean(self.wall_s)) / 60 if self.wall_s else float("nan")

    @property
    def epoch_minutes(self) -> float:
        """Mean training time of one epoch, unfinished runs included (NaN without timed runs)."""
        walls = [*self.wall_s, *(u.wall_s for u in self.unfinished)]
        epochs = [*self.epochs, *(u.epochs for u in self.unfinished)]
        per_epoch = [w / e for w, e in zip(walls, epochs, strict=True) if np.isfinite(w) and e]
        return float(np.mean(per_epoch)) / 60 if per_epoch else float("nan")

    @property
    def sd(self) -> float:
        """Sample standard deviation over seeds (0 for one seed, NaN without runs)."""
        if not self.n:
            return float("nan")
        return float(np.std(self.accuracies, ddof=1)) if self.n > 1 else 0.0


def _tag(profile: str, overrides: Mapping[str, Any]) -> str:
    """The overrides' run-name tag (typed, defaults dropped), so equal settings compare equal."""
    return override_tag(override_profile(get_profile(profile), overrides))


def _sweep_entries(profile: str, directory: Path | str | None) -> dict[str, Any]:
    """The recorded runs (``<loss>/seed<k>[/...]`` keys; per-loss summaries left out)."""
    entries = load_results(profile, directory).get(SWEEP_CHAPTER, {})
    return {key: entry for key, entry in sorted(entries.items()) if "/seed" in key}


def gather_arms(
    profile: str = "laptop",
    directory: Path | str | None = None,
    arms: Sequence[Arm] = ARMS,
    precision: str = "float32",
) -> list[ArmResult]:
    """Every arm's runs from the results store (an arm without runs has ``n == 0``).

    A run belongs to an arm when its loss, its precision, the default classes and its
    overridden profile fields all match; the results folder must hold runs of one machine.
    Runs recorded unfinished (``"finished": false``) go to ``ArmResult.unfinished``.
    """
    rows = [entry["value"] for entry in _sweep_entries(profile, directory).values()]
    results = []
    for arm in arms:
        wanted = _tag(profile, arm.overrides)
        matching = sorted(
            (
                r
                for r in rows
                if r["loss"] == arm.loss
                and r.get("precision", "float32") == precision
                and _tag(profile, r.get("overrides", {})) == wanted
                and len(r.get("classes", [0, 0, 0])) == 3
            ),
            key=lambda r: r["seed"],
        )
        mine = [r for r in matching if r.get("finished", True)]
        budget = override_profile(get_profile(profile), arm.overrides).max_epochs
        stopped = tuple(
            Unfinished(int(r["seed"]), float(r["true_accuracy"]), int(r["epochs"]), budget,
                       float(r.get("wall_time_s", float("nan"))))
            for r in matching
            if not r.get("finished", True)
        )  # fmt: skip
        results.append(
            ArmResult(
                arm,
                tuple(int(r["seed"]) for r in mine),
                tuple(float(r["true_accuracy"]) for r in mine),
                tuple(int(r["epochs"]) for r in mine),
                tuple(float(r.get("wall_time_s", float("nan"))) for r in mine),
                stopped,
            )
        )
    return results


def missing_runs(
    results: Sequence[ArmResult], seeds: Sequence[int] = (0, 1, 2)
) -> list[tuple[Arm, int]]:
    """``(arm, seed)`` for every run of ``seeds`` an arm has not recorded, in arm order."""
    return [(r.arm, seed) for r in results for seed in seeds if seed not in r.seeds]


def recorded_devices(profile: str = "laptop", directory: Path | str | None = None) -> list[str]:
    """The devices the recorded runs ran on (one, when the folder holds one machine's runs)."""
    return sorted({str(e.get("device")) for e in _sweep_entries(profile, directory).values()})


def format_ablation(results: Sequence[ArmResult]) -> str:
    """The ablation table: per arm, true test accuracy mean ± sd, the seeds, and epochs."""
    lines = [f"{'factor':<20} {'arm':<52} {'n':>2}  {'true accuracy':>15}  epochs  per seed"]
    for r in results:
        if not r.n:
            status = "unfinished" if r.unfinished else "not run"
            lines.append(f"{r.arm.factor:<20} {r.arm.label:<52} {0:>2}  {status:>15}")
        else:
            per_seed = ", ".join(
                f"s{s} {a:.1%}" for s, a in zip(r.seeds, r.accuracies, strict=True)
            )
            lines.append(
                f"{r.arm.factor:<20} {r.arm.label:<52} {r.n:>2}  {r.mean:>6.1%} ± {r.sd:>5.1%}  "
                f"{np.mean(r.epochs):>6.1f}  {per_seed}"
            )
        lines += [f"{'':<20}   s{u.seed} {u.describe()}" for u in r.unfinished]
    return "\n".join(lines)


def gap_closed(results: Sequence[ArmResult], target: float = ORIGINAL["article"]) -> dict[str, Any]:
    """How much of the gap between the baseline and ``target`` each article arm closes.

    Returns the baseline mean, the gap, and per run arm (``label -> share``) the share
    ``(arm - baseline) / (target - baseline)``: 1 closes the gap, 0 changes nothing, a
    negative share widens it.

    Raises
    ------
    ValueError
        When the baseline arm has no runs.
    """
    base = next((r for r in results if r.arm.factor == "baseline"), None)
    if base is None or not base.n:
        raise ValueError("The baseline arm has no runs yet: run scripts/runs/gap-ablation.txt.")
    gap = target - base.mean
    shares = {
        r.arm.label: (r.mean - base.mean) / gap
        for r in results
        if r.n and r.arm.loss == base.arm.loss and r is not base
    }
    return {"baseline": base.mean, "gap": gap, "shares": shares}


def best_arm(results: Sequence[ArmResult]) -> ArmResult | None:
    """The article arm that closes most of the gap (:func:`gap_closed`), if any has run."""
    shares = gap_closed(results)["shares"]
    best = max(shares, key=shares.get, default=None)
    return next(r for r in results if r.arm.label == best) if best is not None else None


# Short names of the arms the chapter quotes.
def arm_named(label: str, arms: Sequence[Arm] = ARMS) -> Arm:
    """The arm labelled ``label`` (a label of :data:`ARMS`, e.g. ``QUOTED["lr5"]``)."""
    found = [arm for arm in arms if arm.label == label]
    if not found:
        raise KeyError(f"No arm {label!r}; the arms are: {', '.join(a.label for a in arms)}.")
    return found[0]


QUOTED = {
    "size160": "160 px",
    "size299": "299 px",
    "lr": "learning rate 1e-4",
    "lr5": "learning rate 1e-5, up to 150 epochs",
    "patience": "patience 15",
    "test_stop": "stopping on the test set",
    "head4": "4 outputs for 3 classes",
    "original": "original recipe (299 px, 1e-5, test stop)",
    "regular": "regular, 96 px",
}


def quotable(results: Sequence[ArmResult]) -> dict[str, str]:
    """The chapter's sentences' values, as text: each arm's mean and seed count, the
    baseline, the gap, the arm that closes most of it (or that none has run) and how much
    of the gap that arm leaves."""

    def mean(r: ArmResult) -> str:
        if r.n:
            return f"{r.mean:.1%} ({r.n} seed{'s' if r.n != 1 else ''})"
        if r.unfinished:  # how far the time budget let it get
            return f"{r.unfinished[0].describe()} (seed {r.unfinished[0].seed})"
        return "not run yet"

    found = gap_closed(results)
    by_label = {r.arm.label: r for r in results}
    values = {f"gap_{name}": mean(by_label[label]) for name, label in QUOTED.items()}
    values["gap_target"] = f"{ORIGINAL['article']:.2%}"
    values["gap_baseline"] = f"{found['baseline']:.1%}"
    values["gap_points"] = f"{found['gap'] * 100:.1f} points"
    article = [r for r in results if r.arm.loss == "article" and r.arm.factor != "baseline"]
    values["gap_arms_run"] = str(sum(1 for r in article if r.n))
    values["gap_arms_total"] = str(len(article))
    shares = found["shares"]
    top = best_arm(results)
    best = top.arm.label if top is not None else None
    values["gap_remaining"] = f"all of it ({found['gap'] * 100:.1f} points)"
    if best is None:
        values["gap_largest"] = "none has run yet"
    elif shares[best] <= 0:
        values["gap_largest"] = (
            "none moves it closer: every arm run so far leaves it lower or equal"
        )
    else:
        values["gap_largest"] = (
            f"{best}, which more than closes the gap ({shares[best]:.0%} of it)"
            if shares[best] >= 1
            else f"{best}, which closes {shares[best]:.0%} of the gap"
        )
        left = (1 - shares[best]) * found["gap"]
        values["gap_remaining"] = (
            "none: that arm alone reaches the original's accuracy"
            if left <= 0
            else f"{left * 100:.1f} points"
        )
    return values


def plot_ablation(results: Sequence[ArmResult], num_classes: int = 3, dpi: int = DPI) -> Figure:
    """Per arm, each seed's true test accuracy (dots) and the mean ± sd, beside references.

    The original's two accuracies and chance (``1 / num_classes``) are drawn as vertical
    lines; arms without runs are listed as "not run", unfinished runs drawn hollow, and an
    arm whose mean falls below the scale (which starts just under chance) is marked at its edge.
    """
    fig = Figure(figsize=(8.0, 0.36 * len(results) + 1.4), dpi=dpi)
    ax = fig.add_subplot()
    rows = np.arange(len(results))[::-1]
    low = 1 / num_classes - 0.05  # the scale starts just below chance
    for y, r in zip(rows, results, strict=True):
        colour = "tab:blue" if r.arm.loss == "crossentropy" else "tab:orange"
        if r.n:
            ax.errorbar(r.mean, y, xerr=r.sd, fmt="s", color=colour, capsize=3, ms=6)
            ax.scatter(r.accuracies, [y] * r.n, s=16, color="k", zorder=3, alpha=0.6)
        if r.n and r.mean < low:  # e.g. the 4-output head, whose extra output always wins
            ax.annotate(f"← {r.mean:.1%}, below the scale", (low, y), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=8, color=colour)  # fmt: skip
        for u in r.unfinished:  # hollow: the best epoch so far of a run still to finish
            ax.scatter([u.accuracy], [y], s=30, facecolors="none", edgecolors=colour, zorder=3)
            ax.annotate(f"unfinished ({u.epochs} of ≤{u.max_epochs} epochs)", (u.accuracy, y),
                        xytext=(6, 0), textcoords="offset points", va="center", fontsize=8,
                        color="0.4")  # fmt: skip
        if not r.n and not r.unfinished:
            ax.text(1 / num_classes + 0.02, y, "not run yet", va="center", color="0.5", fontsize=9)
    references = (
        (ORIGINAL["article"], "original, article loss", "tab:orange"),
        (ORIGINAL["crossentropy"], "original, regular", "tab:blue"),
        (1 / num_classes, "chance", "0.4"),
    )
    for x, label, colour in references:
        ax.axvline(x, color=colour, ls="--", lw=1, label=f"{label} ({x:.1%})")
    ax.set_yticks(rows, [r.arm.label for r in results])
    ax.set(
        xlabel="true test accuracy",
        xlim=(low, 1.0),
        ylim=(-0.6, len(results) - 0.4),
    )
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def recorded_curve(
    key: str,
    metric: str = "stuck",
    profile: str = "laptop",
    directory: Path | str | None = None,
) -> list[float]:
    """Per-epoch values of ``metric`` of the run recorded under ``key`` (e.g. ``article/seed0``).

    Raises
    ------
    KeyError
        For a run that is not recorded, or was recorded without that metric's history.
    """
    history = _sweep_entries(profile, directory).get(key, {}).get("value", {}).get("history", {})
    if metric not in history:
        raise KeyError(
            f"No {metric!r} history for run {key!r} in the {profile} results: run it with "
            "scripts/sweep_losses.py (runs recorded before the history was kept need the same "
            "command again; it loads them and records their history)."
        )
    return [float(v) for v in history[metric]]


def plot_stuck(
    curves: Mapping[str, Sequence[float]], threshold: float = STUCK_THRESHOLD, dpi: int = DPI
) -> Figure:
    """Per run, the share of training images stuck (wrong class's ``p > threshold``) by epoch."""
    if not curves or not any(len(c) for c in curves.values()):
        raise ValueError("No stuck-fraction history recorded: re-run the queue to record it.")
    fig = Figure(figsize=(6.4, 3.2), dpi=dpi)
    ax = fig.add_subplot()
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
    ax.set(
        xlabel="epoch",
        ylabel=f"share of images with p > {threshold}",
        ylim=(0, None),
        title="Images the model is confidently wrong about",
    )
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
