"""The gap to the original study: ablation arms, their recorded runs, a table and a figure.

An *arm* changes one factor of the laptop settings (the image size, the learning rate, the
patience, what early stopping watches) and trains the article loss (or cross-entropy, as the
control) with it. ``scripts/sweep_losses.py`` records every run in the results store under
``complementary_sweep/<loss>/seed<k>[/<overrides>]``; this module gathers an arm's runs by
their settings, never by hand-typed numbers, and says how much of the gap each arm closes,
with an interval over seeds (:func:`share_of_gap`, :func:`format_share`), and separates the
learning rate from the epoch budget in a 2 x 2 table (:func:`lr_budget_table`).
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
from helpers.profiles import Profile, get_profile, override_profile, override_tag
from helpers.results import load_results

# The original study's test accuracies (one run each, 299 px, three classes).
ORIGINAL = {"crossentropy": 0.9375, "article": 0.9141}
# The original's Adam ``decay`` (Keras 2: lr / (1 + decay * step)), as issue 15 and chapter
# 6's settings table give it; ``Profile.lr_decay`` reproduces it.
ORIGINAL_DECAY = 1e-6
# The factor of the arms that, with the baseline, fill the learning rate x epoch budget square.
LR_BUDGET = "(b) lr × budget"
# The original's recipe at the laptop's 96 px: its learning rate and decay, Keras' own
# BatchNorm moving averages, patience 3 on the test set, up to 200 epochs (of its 1000).
RECIPE_96: dict[str, Any] = {
    "learning_rate": 1e-5,
    "lr_decay": ORIGINAL_DECAY,
    "recalibrate_bn": False,
    "patience": 3,
    "stop_on": "test",
    "max_epochs": 200,
}


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
    # 30 times smaller steps need many more epochs: the original allowed up to 1000. With
    # the baseline (3e-4, at most 25 epochs) these three arms fill the learning rate x epoch
    # budget square (lr_budget_table), which tells the two apart.
    Arm(
        "learning rate 1e-5, up to 150 epochs",
        LR_BUDGET,
        overrides={"learning_rate": 1e-5, "max_epochs": 150},
    ),
    Arm(
        "learning rate 1e-5, at most 25 epochs",
        LR_BUDGET,
        overrides={"learning_rate": 1e-5, "max_epochs": 25},
    ),
    Arm(
        "up to 150 epochs, patience 15 (learning rate 3e-4)",
        LR_BUDGET,
        overrides={"max_epochs": 150, "patience": 15},
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
    # The original's own recipe at 96 px (RECIPE_96), with its 4-output head and with 3.
    Arm(
        "original recipe at 96 px, 4 outputs",
        "(e) original recipe",
        overrides={**RECIPE_96, "extra_outputs": 1},
    ),
    Arm("original recipe at 96 px, 3 outputs", "(e) original recipe", overrides=RECIPE_96),
    Arm("4 outputs for 3 classes", "(f) output head", overrides={"extra_outputs": 1}),
    Arm("regular, 96 px", "control", "crossentropy"),
    Arm("regular, 160 px", "control", "crossentropy", {"image_size": 160}),
    Arm("regular, 299 px", "control", "crossentropy", {"image_size": 299}),
    # Does 1e-5 help the article loss in particular, or every model?
    Arm(
        "regular, 1e-5, up to 150 epochs",
        "control",
        "crossentropy",
        {"learning_rate": 1e-5, "max_epochs": 150},
    ),
    Arm("forward, 96 px", "control", "forward"),
    Arm(
        "forward, 1e-5, up to 150 epochs",
        "control",
        "forward",
        {"learning_rate": 1e-5, "max_epochs": 150},
    ),
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
    budget stopped are kept apart in ``unfinished``. ``best_epochs`` (1-based, per seed) is
    empty when a run was recorded without its best epoch.
    """

    arm: Arm
    seeds: tuple[int, ...]
    accuracies: tuple[float, ...]
    epochs: tuple[int, ...]
    wall_s: tuple[float, ...] = ()
    unfinished: tuple[Unfinished, ...] = ()
    best_epochs: tuple[int, ...] = ()

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
        budget = arm_profile(arm, profile).max_epochs
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
                tuple(int(r["best_epoch"]) for r in mine)
                if all("best_epoch" in r for r in mine)
                else (),
            )
        )
    return results


def arm_profile(arm: Arm, profile: str = "laptop") -> Profile:
    """The profile ``arm`` trains with: ``profile`` with the arm's overrides."""
    return override_profile(get_profile(profile), arm.overrides)


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
    base = _baseline(results)
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


# ------------------------------------------------------------------ intervals over seeds


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval, from ``n_arm`` and ``n_base`` seeds.

    ``low`` and ``high`` are NaN when either side has fewer than two seeds (no spread to
    go by). ``method`` is ``"bootstrap"`` or ``"welch"``.
    """

    point: float
    low: float
    high: float
    n_arm: int
    n_base: int
    method: str
    level: float = 0.95

    @property
    def has_interval(self) -> bool:
        """Whether the interval exists (both sides have at least two seeds)."""
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or wholly below 0."""
        return self.has_interval and (self.low > 0 or self.high < 0)


METHODS = ("bootstrap", "welch")


def _interval(
    arm: ArmResult,
    base: ArmResult,
    scale: float | None,
    *,
    method: str,
    level: float,
    resamples: int,
    seed: int,
) -> Interval:
    """``(mean_arm - mean_base) / (target - mean_base)`` with ``scale = target``, or the
    plain difference of means with ``scale = None``, and its interval."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}.")
    if not arm.n or not base.n:
        raise ValueError(
            f"no runs to compare: {arm.arm.label!r} has {arm.n}, {base.arm.label!r} {base.n}."
        )
    a, b = np.asarray(arm.accuracies, float), np.asarray(base.accuracies, float)

    def statistic(mean_a: Any, mean_b: Any) -> Any:
        if scale is None:
            return mean_a - mean_b
        gap = scale - mean_b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, (mean_a - mean_b) / gap, np.nan)

    point = float(statistic(a.mean(), b.mean()))
    low = high = float("nan")
    if arm.n > 1 and base.n > 1 and method == "bootstrap":
        rng = np.random.default_rng(seed)
        means_a = a[rng.integers(0, len(a), (resamples, len(a)))].mean(axis=1)
        means_b = b[rng.integers(0, len(b), (resamples, len(b)))].mean(axis=1)
        values = statistic(means_a, means_b)
        tail = 100 * (1 - level) / 2
        if np.isfinite(values).any():
            low, high = (float(v) for v in np.nanpercentile(values, [tail, 100 - tail]))
    elif arm.n > 1 and base.n > 1:  # Welch: the difference's t interval over the observed gap
        from scipy import stats

        var_a, var_b = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = float(np.sqrt(var_a + var_b))
        diff = float(a.mean() - b.mean())
        if se == 0:
            low = high = diff
        else:
            df = se**4 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
            half = float(stats.t.ppf((1 + level) / 2, df)) * se
            low, high = diff - half, diff + half
        if scale is not None:
            gap = scale - float(b.mean())
            low, high = (low / gap, high / gap) if gap > 0 else (float("nan"),) * 2
    return Interval(point, low, high, arm.n, base.n, method, level)


def share_of_gap(
    arm: ArmResult,
    base: ArmResult,
    target: float = ORIGINAL["article"],
    *,
    method: str = "welch",
    level: float = 0.95,
    resamples: int = 20_000,
    seed: int = 0,
) -> Interval:
    """The share of the gap between ``base`` and ``target`` that ``arm`` closes, with an interval.

    The share is ``(mean_arm - mean_base) / (target - mean_base)``: 1 closes the gap, 0
    changes nothing, a negative share widens it. The default, ``method="welch"``, is Welch's
    t interval of the difference of means, divided by the observed gap (treated as known):
    with three seeds a side it is the honest one. ``method="bootstrap"`` resamples the arm's
    seeds and the baseline's seeds independently (with replacement, ``resamples`` times,
    seeded) and takes the percentile interval of the share; resamples whose baseline mean
    reaches ``target`` (no gap) are left out. With three seeds a side the bootstrap has only
    ten distinct means per side and no small-sample correction, so its interval is too
    narrow, often several times narrower than Welch's. Fewer than two seeds on either side
    give no interval (NaN ends).

    Raises
    ------
    ValueError
        For an arm or baseline without runs, or an unknown ``method``.
    """
    return _interval(arm, base, target, method=method, level=level, resamples=resamples, seed=seed)


def difference(
    arm: ArmResult,
    base: ArmResult,
    *,
    method: str = "welch",
    level: float = 0.95,
    resamples: int = 20_000,
    seed: int = 0,
) -> Interval:
    """``arm``'s mean true accuracy minus ``base``'s, with an interval as in :func:`share_of_gap`."""
    return _interval(arm, base, None, method=method, level=level, resamples=resamples, seed=seed)


def percent_step(interval: Interval) -> int:
    """The rounding, in percent, that ``interval`` supports: 10 for an interval wider than
    50 points (or none at all), 5 wider than 20, else 1."""
    if not interval.has_interval:
        return 10
    width = 100 * (interval.high - interval.low)
    return 10 if width > 50 else 5 if width > 20 else 1


def _pct(value: float, step: int) -> str:
    return f"{int(round(100 * value / step)) * step}%"


def format_share(interval: Interval, what: str = "the gap") -> str:
    """A share of the gap closed (:func:`share_of_gap`) rounded to what its interval supports.

    "closes" only when the interval lies above 0, "widens" only when it lies below 0, and
    "does not measurably close" when it includes 0; e.g. ``"closes about 100% of the gap
    (95% interval 10% to 180%; 3 and 3 seeds, welch)"``. The point and the ends are rounded
    alike (:func:`percent_step`).
    """
    step = percent_step(interval)
    about = _pct(interval.point, step)
    seeds = f"{interval.n_arm} and {interval.n_base} seeds"
    if not interval.has_interval:
        return f"moves about {about} of {what}, without an interval ({seeds}: too few to tell)"
    span = (
        f"{interval.level:.0%} interval {_pct(interval.low, step)} to "
        f"{_pct(interval.high, step)}; {seeds}, {interval.method}"
    )
    if interval.low > 0:
        return f"closes about {about} of {what} ({span})"
    if interval.high < 0:
        return f"widens {what}: about {about} of it ({span})"
    return (
        f"does not measurably close {what}: about {about} of it, the interval includes 0 ({span})"
    )


def gap_intervals(
    results: Sequence[ArmResult],
    target: float = ORIGINAL["article"],
    method: str = "welch",
) -> dict[str, Interval]:
    """Per article arm with runs, its :func:`share_of_gap` against the baseline arm.

    Raises
    ------
    ValueError
        When the baseline arm has no runs.
    """
    base = _baseline(results)
    return {
        r.arm.label: share_of_gap(r, base, target, method=method)
        for r in results
        if r.n and r.arm.loss == base.arm.loss and r is not base
    }


def _baseline(results: Sequence[ArmResult]) -> ArmResult:
    base = next((r for r in results if r.arm.factor == "baseline"), None)
    if base is None or not base.n:
        raise ValueError("The baseline arm has no runs yet: run scripts/runs/gap-ablation.txt.")
    return base


def _per_seed(values: Sequence[int], caps: int | None = None) -> str:
    """``"11, 25*, 7"``: ``*`` marks a run that used its whole epoch budget ``caps``."""
    return ", ".join(f"{v}{'*' if caps is not None and v >= caps else ''}" for v in values)


def format_shares(
    results: Sequence[ArmResult],
    profile: str = "laptop",
    target: float = ORIGINAL["article"],
    method: str = "welch",
) -> str:
    """Every article arm's share of the gap closed with its interval, epochs run and best epochs.

    Epochs run marked ``*`` used the arm's whole budget: early stopping never ended them.
    """
    shares = gap_intervals(results, target, method)
    lines = []
    for r in results:
        if r.arm.loss != "article" or r.arm.factor == "baseline":
            continue
        if not r.n:
            status = f"unfinished, {r.unfinished[0].describe()}" if r.unfinished else "not run yet"
            lines.append(f"{r.arm.label}: {status}")
            continue
        cap = arm_profile(r.arm, profile).max_epochs
        best = f"; best epochs {_per_seed(r.best_epochs)}" if r.best_epochs else ""
        lines.append(
            f"{r.arm.label}: {r.mean:.1%} ± {r.sd:.1%}, {format_share(shares[r.arm.label])}; "
            f"epochs run {_per_seed(r.epochs, cap)} (of at most {cap}){best}"
        )
    return "\n".join(lines + ["(* = stopped by the epoch budget, not by early stopping)"])


def _lr(value: float) -> str:
    """``3e-4`` for 0.0003."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def lr_budget_cells(
    results: Sequence[ArmResult], profile: str = "laptop"
) -> dict[tuple[float, int], ArmResult]:
    """The learning rate x epoch budget square: ``(learning_rate, max_epochs) -> ArmResult``.

    Its cells are the baseline and the arms of factor :data:`LR_BUDGET`.

    Raises
    ------
    ValueError
        When two arms fall in one cell, or the arms do not make a 2 x 2 square.
    """
    cells: dict[tuple[float, int], ArmResult] = {}
    for r in results:
        if r.arm.loss == "article" and r.arm.factor in ("baseline", LR_BUDGET):
            settings = arm_profile(r.arm, profile)
            cell = (settings.learning_rate, settings.max_epochs)
            if cell in cells:
                raise ValueError(f"two arms at learning rate {cell[0]}, {cell[1]} epochs")
            cells[cell] = r
    rates = sorted({lr for lr, _ in cells}, reverse=True)
    budgets = sorted({epochs for _, epochs in cells})
    if len(rates) != 2 or len(budgets) != 2 or len(cells) != 4:
        raise ValueError(f"the lr x budget arms do not make a 2 x 2 square: {sorted(cells)}")
    return cells


def lr_budget_table(
    results: Sequence[ArmResult],
    profile: str = "laptop",
    target: float = ORIGINAL["article"],
    method: str = "welch",
) -> str:
    """The 2 x 2 table (learning rate x epoch budget) that separates the two effects.

    Per cell, the article loss's mean true test accuracy ± sd over seeds, the seeds, the
    epochs run (``*``: the budget ended it) and best epochs, and its share of the gap with
    its interval; then each factor's effect at both levels of the other (difference of
    means in points, with its interval), so a learning-rate effect that needs the longer
    budget shows as one. Cells without runs say "not run yet".
    """
    cells = lr_budget_cells(results, profile)
    base = _baseline(results)
    rates = sorted({lr for lr, _ in cells}, reverse=True)
    budgets = sorted({epochs for _, epochs in cells})
    width = 30

    def mean(r: ArmResult) -> str:
        return f"{r.mean:.1%} ± {r.sd:.1%} (n={r.n})" if r.n else "not run yet"

    lines = [
        "learning rate × epoch budget (article loss; true test accuracy, mean ± sd over seeds)",
        f"{'':<10}" + "".join(f"{f'at most {b} epochs':<{width}}" for b in budgets),
    ]
    for lr in rates:
        lines.append(f"{_lr(lr):<10}" + "".join(f"{mean(cells[lr, b]):<{width}}" for b in budgets))
    lines.append("")
    for lr in rates:
        for b in budgets:
            r = cells[lr, b]
            settings = arm_profile(r.arm, profile)
            head = f"{_lr(lr)}, ≤{b} epochs, patience {settings.patience}: "
            if not r.n:
                lines.append(head + "not run yet")
                continue
            share = (
                "the baseline"
                if r is base
                else format_share(share_of_gap(r, base, target, method=method))
            )
            best = f", best epochs {_per_seed(r.best_epochs)}" if r.best_epochs else ""
            lines.append(head + f"epochs run {_per_seed(r.epochs, b)}{best}; {share}")
    lines.append("")
    lines += [
        f"{what}: {format_effect(d)}" for what, d in lr_budget_effects(results, profile, method)
    ]
    patience = {arm_profile(r.arm, profile).patience for r in cells.values()}
    if len(patience) > 1:
        lines.append(
            "(the cells' patience differs, as listed above: the budget's effect includes it)"
        )
    return "\n".join(lines)


def lr_budget_effects(
    results: Sequence[ArmResult], profile: str = "laptop", method: str = "welch"
) -> list[tuple[str, Interval | None]]:
    """The square's four effects, each a difference of mean true accuracy with its interval:
    the smaller learning rate at each epoch budget, then the longer budget at each learning
    rate. ``None`` where a cell has no runs."""
    cells = lr_budget_cells(results, profile)
    (high_lr, low_lr), (short, long) = (
        sorted({lr for lr, _ in cells}, reverse=True),
        sorted({epochs for _, epochs in cells}),
    )

    def d(a: ArmResult, b: ArmResult) -> Interval | None:
        return difference(a, b, method=method) if a.n and b.n else None

    return [
        *(
            (f"learning rate {_lr(low_lr)} instead of {_lr(high_lr)}, at most {b} epochs",
             d(cells[low_lr, b], cells[high_lr, b]))
            for b in (short, long)
        ),
        *(
            (f"at most {long} instead of {short} epochs, learning rate {_lr(lr)}",
             d(cells[lr, long], cells[lr, short]))
            for lr in (high_lr, low_lr)
        ),
    ]  # fmt: skip


def format_effect(d: Interval | None) -> str:
    """A difference of accuracies (:func:`difference`) in points with its interval, e.g.
    ``"+19.9 points (95% interval +15.0 to +24.8)"``, ``", includes 0"`` added when it does;
    or ``"not measured yet"`` (``None``: an arm it compares has no finished run)."""
    if d is None:
        return "not measured yet"
    if not d.has_interval:
        return f"{100 * d.point:+.1f} points (too few seeds for an interval)"
    return (
        f"{100 * d.point:+.1f} points ({d.level:.0%} interval {100 * d.low:+.1f} to "
        f"{100 * d.high:+.1f}{'' if d.excludes_zero else ', includes 0'})"
    )


def lr_budget_verdict(
    results: Sequence[ArmResult], profile: str = "laptop", method: str = "welch"
) -> str:
    """What the square shows, as a clause that follows "So far, ": which of the two factors
    moves the article loss where the other is held fixed, or how many cells still lack runs."""
    cells = lr_budget_cells(results, profile)
    empty = sum(1 for r in cells.values() if r.n < 2)
    if empty:
        return (
            f"the two are not separated: {empty} of the four cells of the learning rate × "
            "epoch budget square have fewer than two seeds"
        )
    effects = lr_budget_effects(results, profile, method)
    clear = [what for what, d in effects if d is not None and d.excludes_zero]
    if not clear:  # still say which way the point estimates lean, and that they may be noise

        def points(factor: str) -> str:
            found = [
                f"{100 * d.point:+.1f}" for what, d in effects if d and what.startswith(factor)
            ]
            return " and ".join(found) + " points"

        return (
            "neither factor measurably moves the article loss where the other is held fixed "
            f"(point estimates: the smaller learning rate {points('learning rate')}, the longer "
            f"budget {points('at most')}; every interval includes 0)"
        )
    moved = "; ".join(f"{what}: {format_effect(d)}" for what, d in effects if what in clear)
    rest = [(what, d) for what, d in effects if what not in clear and d is not None]
    if not rest:
        return f"the article loss is measurably moved by {moved}"
    others = "the other effect's interval includes" if len(rest) == 1 else (
        f"the other {('two', 'three')[len(rest) - 2]} effects' intervals include")  # fmt: skip
    leans = "; ".join(f"{what}: {100 * d.point:+.1f} points" for what, d in rest)
    return f"the article loss is measurably moved by {moved}; {others} 0 ({leans})"


def lr_budget_answer(
    results: Sequence[ArmResult], profile: str = "laptop", method: str = "welch"
) -> str:
    """The square's answer as one short clause for the introduction (it follows "So far, "):
    which factor measurably moves the article loss, with its largest clear effect; the full
    account, every effect with its interval, is :func:`lr_budget_verdict`."""
    if any(r.n < 2 for r in lr_budget_cells(results, profile).values()):
        return lr_budget_verdict(results, profile, method)
    effects = [(w, d) for w, d in lr_budget_effects(results, profile, method) if d is not None]
    clear = [(w, d) for w, d in effects if d.excludes_zero]
    if not clear:
        return "neither, measurably: every effect in the square has an interval that includes 0"
    factors = {"the learning rate": "learning rate", "the epoch budget": "at most"}
    found = [
        name for name, prefix in factors.items() if any(w.startswith(prefix) for w, _ in clear)
    ]
    other = next(iter(set(factors) - set(found)), None)
    who = " and ".join(found) + (f", not {other}" if other else "")
    what, d = max(clear, key=lambda x: abs(x[1].point))
    only = ", the only one of the four effects whose interval excludes 0" if len(clear) == 1 else ""
    return (
        f"{who}: {what}, {100 * d.point:+.1f} points ({d.level:.0%} interval "
        f"{100 * d.low:+.1f} to {100 * d.high:+.1f}){only}"
    )


CONTROL_LR = {"learning_rate": 1e-5, "max_epochs": 150}  # the controls' second setting


def _control_arms(results: Sequence[ArmResult]) -> dict[str, tuple[ArmResult, ArmResult]]:
    """Per loss (article, cross-entropy, forward): its arm at the laptop settings and at 1e-5
    with up to 150 epochs."""
    found = {}
    for loss in ("article", "crossentropy", "forward"):
        mine = [r for r in results if r.arm.loss == loss]
        base = next((r for r in mine if not r.arm.overrides), None)
        slow = next((r for r in mine if dict(r.arm.overrides) == CONTROL_LR), None)
        if base is None or slow is None:
            raise ValueError(f"no {loss} arm at the laptop settings and at {CONTROL_LR}")
        found[loss] = (base, slow)
    return found


def control_effects(
    results: Sequence[ArmResult], method: str = "welch"
) -> dict[str, Interval | None]:
    """Per loss (article, cross-entropy, forward): its 1e-5 / 150-epoch arm's mean true
    accuracy minus its arm at the laptop settings, with an interval (``None`` without runs),
    so that a gain of the smaller learning rate can be told apart for one loss or for all."""
    return {
        loss: difference(slow, base, method=method) if slow.n and base.n else None
        for loss, (base, slow) in _control_arms(results).items()
    }


def format_control_effects(results: Sequence[ArmResult], method: str = "welch") -> str:
    """The controls' table: per loss, both arms' means and the effect of 1e-5 / 150 epochs."""

    def cell(r: ArmResult) -> str:
        if r.n:
            return f"{r.mean:.1%} ± {r.sd:.1%} (n={r.n})"
        return f"unfinished ({r.unfinished[0].epochs} epochs)" if r.unfinished else "not run yet"

    effects = control_effects(results, method)
    lines = [f"{'loss':<14}{'laptop settings':<24}{'1e-5, up to 150 epochs':<26}effect of 1e-5"]
    for loss, (base, slow) in _control_arms(results).items():
        lines.append(f"{loss:<14}{cell(base):<24}{cell(slow):<26}{format_effect(effects[loss])}")
    return "\n".join(lines)


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


def describe_arm(r: ArmResult) -> str:
    """An arm's mean true accuracy and its seeds (``"80.0% (1 seed)"``), how far an unfinished
    run got, or ``"not run yet"``."""
    if r.n:
        return f"{r.mean:.1%} ({r.n} seed{'s' if r.n != 1 else ''})"
    if r.unfinished:  # how far the time budget let it get
        return f"{r.unfinished[0].describe()} (seed {r.unfinished[0].seed})"
    return "not run yet"


def quotable(results: Sequence[ArmResult]) -> dict[str, str]:
    """The chapter's sentences' values, as text: each arm's mean and seed count, the
    baseline, the gap, the arm that closes most of it (or that none has run) and how much
    of the gap that arm leaves."""

    found = gap_closed(results)
    by_label = {r.arm.label: r for r in results}
    values = {f"gap_{name}": describe_arm(by_label[label]) for name, label in QUOTED.items()}
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
        assert top is not None  # best names it
        share = format_share(share_of_gap(top, _baseline(results)))
        values["gap_largest"] = (
            f"{best} (the highest mean test accuracy of the arms, so picked after seeing it), "
            f"which {share}"
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


def extra_output_curves(
    arm: Arm,
    seeds: Sequence[int] = (0, 1, 2),
    profile: str = "laptop",
    directory: Path | str | None = None,
) -> dict[int, list[float]]:
    """Per seed of ``arm`` with a recorded run, the share of test images on which the extra
    output wins the argmax, epoch by epoch (``extra_output_share`` in the run's history)."""
    curves = {}
    for seed in seeds:
        try:
            curves[seed] = recorded_curve(arm.key(seed), "extra_output_share", profile, directory)
        except KeyError:
            continue
    return curves


def describe_takeover(curves: Mapping[int, Sequence[float]]) -> str:
    """What the extra output did, in words: in how many seeds it wins most test images at the
    last epoch, its share then (mean over seeds) and its largest share in any epoch."""
    if not curves:
        return "has not been measured yet: no run of this arm is recorded"
    n = len(curves)
    taken = sum(1 for c in curves.values() if c[-1] > 0.5)
    if n == 1:
        verb = f"{'takes' if taken else 'does not take'} over in the one seed recorded"
    else:
        verb = (
            f"takes over in every one of {n} seeds"
            if taken == n
            else f"takes over in none of {n} seeds"
            if taken == 0
            else f"takes over in {taken} of {n} seeds"
        )
    last = float(np.mean([c[-1] for c in curves.values()]))
    peak = max(max(c) for c in curves.values())
    return (
        f"{verb}: at the last epoch it wins on {last:.0%} of the test images (mean over seeds), "
        f"and on at most {peak:.0%} in any epoch"
    )


def takeover_reading(curves: Mapping[int, Sequence[float]]) -> str:
    """What the extra output's behaviour at 1e-5 says about the original's 91.41% with four
    outputs: one or two sentences for the chapter."""
    if not curves:
        return "Its runs are still queued, so the original's 91.41% with four outputs stays open."
    taken = sum(1 for c in curves.values() if c[-1] > 0.5)
    if taken == 0:
        return (
            "So the original's 91.41% with four outputs is no contradiction: the fourth output "
            "is a place the article loss *can* move probability to, and at the original's "
            "learning rate it did not get there."
        )
    if taken == len(curves):
        return (
            "So the original's 91.41% with four outputs cannot come from this recipe as we run "
            "it: something else in the original's code must differ."
        )
    return (
        "Whether it does depends on the seed, so the original's 91.41% with four outputs may "
        "be a run in which it did not."
    )


def plot_extra_output_share(curves: Mapping[int, Sequence[float]], dpi: int = DPI) -> Figure:
    """Per seed, the share of test images the extra output wins, by epoch."""
    if not curves:
        raise ValueError("No extra-output share recorded: run the 4-output arm first.")
    fig = Figure(figsize=(6.4, 3.0), dpi=dpi)
    ax = fig.add_subplot()
    for seed, values in sorted(curves.items()):
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=f"seed {seed}")
    ax.axhline(0.5, color="0.5", ls=":", lw=1, label="half the test images")
    ax.set(
        xlabel="epoch",
        ylabel="test images won by the extra output",
        ylim=(0, 1.02),
        title="The original's fourth output, at the original's learning rate",
    )
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig
