"""The book's experiment, set up once: data, validation split, labels and run names.

Chapters 2-5 and ``scripts/sweep_losses.py`` all train through :func:`train_run`, so a model
trained by one of them (same profile, loss, seed and backend) is loaded by the others instead
of trained again. Only the labels and the weights vary between runs: every run sees the same
images, the same validation split, and the same held-out test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.complementary import (
    complementary_labels,
    expected_pseudo_accuracy,
    pseudo_accuracy,
    true_accuracy,
)
from helpers.data import DEFAULT_CLASSES, Dataset, load_dataset, stratified_split
from helpers.profiles import Profile
from helpers.results import load_results

REFERENCE = "crossentropy"
VAL_FRACTION = 0.2  # share of every training class carved out for validation
SPLIT_SEED = 0  # one validation split for every loss and seed
TEST_LABEL_SEED = 10_000  # one fixed draw of test complementary labels, for pseudo accuracy
SWEEP_CHAPTER = "complementary_sweep"  # where scripts/sweep_losses.py records its runs


@dataclass
class Experiment:
    """Images and labels shared by every run."""

    dataset: Dataset
    idx_fit: np.ndarray
    idx_val: np.ndarray
    ybar_test: np.ndarray

    @property
    def num_classes(self) -> int:
        """Number of classes (3 in the book)."""
        return len(self.dataset.class_names)


def prepare_experiment(
    profile: Profile, max_per_class: int | None = None, classes: Sequence[str] = DEFAULT_CLASSES
) -> Experiment:
    """Load the data set; carve the validation split; draw the test complementary labels.

    ``max_per_class`` caps every class (quick checks only; ``None`` is the book's data);
    ``classes`` are class folder names in label order (default: the original three).
    """
    ds = load_dataset(profile=profile, max_per_class=max_per_class, classes=tuple(classes))
    idx_fit, idx_val = stratified_split(ds.y_train, VAL_FRACTION, seed=SPLIT_SEED)
    ybar_test = complementary_labels(ds.y_test, len(ds.class_names), seed=TEST_LABEL_SEED)
    return Experiment(ds, idx_fit, idx_val, ybar_test)


def training_labels(exp: Experiment, loss: str, seed: int) -> np.ndarray:
    """True labels for ordinary cross-entropy, else complementary labels drawn with ``seed``.

    The same draw labels the training *and* the validation images, so a complementary run
    never sees a true label, not even for early stopping.
    """
    y = exp.dataset.y_train
    return y if loss == REFERENCE else complementary_labels(y, exp.num_classes, seed)


def classes_tag(classes: Sequence[str]) -> str:
    """``""`` for the default classes, else the classes joined, e.g. ``airplanes-watch``."""
    if tuple(classes) == DEFAULT_CLASSES:
        return ""
    return "-".join(name.lower().replace(" ", "_") for name in classes)


def run_name(
    loss: str, max_per_class: int | None = None, classes: Sequence[str] = DEFAULT_CLASSES
) -> str:
    """``regular`` or ``complementary-<loss>``; other classes or a capped data set add a tag.

    The class list is part of the name, so a run on other classes never loads (or replaces)
    a run of the book's three.
    """
    base = "regular" if loss == REFERENCE else f"complementary-{loss}"
    tag = classes_tag(classes)
    return (
        base
        + (f"-{tag}" if tag else "")
        + ("" if max_per_class is None else f"-cap{max_per_class}")
    )


def train_run(
    exp: Experiment,
    loss: str,
    seed: int,
    profile: Profile,
    *,
    max_per_class: int | None = None,
    retrain: bool = False,
    verbose: bool = True,
    precision: str | None = None,
    deadline: float | None = None,
) -> Any:
    """Train (or load) the model for ``loss`` and ``seed``; returns a ``TrainedModel``.

    ``profile`` may carry overrides (``helpers.profiles.override_profile``) and
    ``precision`` is as in ``helpers.training.train_model``; both are part of the run's name.
    Early stopping watches the validation split, or the test set (true labels for
    cross-entropy, the test images' complementary labels otherwise) when
    ``profile.stop_on == "test"``; the validation images stay out of training either way.
    ``profile.extra_outputs`` adds logits that no label names (the original's 4-output head);
    such a run records per epoch the share of test images (up to ``profile.monitor_images``)
    on which an extra output wins (``extra_output_share`` in its history). ``profile``'s
    ``recalibrate_bn`` and ``lr_decay`` reach training through ``train_model``.
    ``deadline`` may leave the run unfinished (``helpers.training.train_model``).
    """
    from helpers.training import train_model

    labels = training_labels(exp, loss, seed)
    ds = exp.dataset
    x_stop, y_stop = ds.x_train[exp.idx_val], labels[exp.idx_val]
    if profile.stop_on == "test":  # the original's choice, kept only to measure its effect
        x_stop, y_stop = ds.x_test, (ds.y_test if loss == REFERENCE else exp.ybar_test)
    return train_model(
        run_name(loss, max_per_class, ds.class_names),
        ds.x_train[exp.idx_fit],
        labels[exp.idx_fit],
        x_stop,
        y_stop,
        profile=profile,
        loss=loss,
        seed=seed,
        num_classes=exp.num_classes + profile.extra_outputs,
        retrain=retrain,
        verbose=verbose,
        precision=precision,
        deadline=deadline,
        extra_output_images=ds.x_test,
    )


def is_trained(
    exp: Experiment,
    loss: str,
    seed: int,
    profile: Profile,
    precision: str | None = None,
    max_per_class: int | None = None,
) -> bool:
    """Whether :func:`train_run` would load a finished run instead of training one.

    Lets a chapter use the expensive runs that exist (a 299-px run takes an hour on a CPU)
    without starting one by accident.
    """
    from helpers import artifacts
    from helpers.training import run_directory

    name = run_name(loss, max_per_class, exp.dataset.class_names)
    return artifacts.is_complete(run_directory(name, profile, seed, precision))


def score_run(exp: Experiment, model: Any, batch_size: int = 32) -> dict[str, Any]:
    """True and pseudo test accuracy of ``model``, and the pseudo accuracy theory predicts.

    A model with outputs beyond the classes (``Profile.extra_outputs``) is scored as it
    predicts, extra outputs included, and also on the real classes alone
    (``true_accuracy_real_classes``): how much it learned, if its extra output wins.
    """
    from helpers.training import extra_output_share, predict_proba

    ds = exp.dataset
    scores = predict_proba(model, ds.x_test, batch_size=batch_size)
    accuracy = true_accuracy(scores, ds.y_test)
    result = {
        "true_accuracy": accuracy,
        "pseudo_accuracy": pseudo_accuracy(scores, exp.ybar_test),
        "expected_pseudo_accuracy": expected_pseudo_accuracy(accuracy, exp.num_classes),
        "probabilities": scores,
    }
    if scores.shape[1] > exp.num_classes:
        real = scores[:, : exp.num_classes]
        result["true_accuracy_real_classes"] = true_accuracy(real, ds.y_test)
        result["extra_output_share"] = extra_output_share(scores, exp.num_classes)
    return result


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per loss: mean and sample standard deviation (0 for one seed) over its seeds."""
    summary: dict[str, dict[str, Any]] = {}
    for loss in dict.fromkeys(r["loss"] for r in rows):
        mine = [r for r in rows if r["loss"] == loss]
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in mine], "n": len(mine)}
        for key in ("true_accuracy", "pseudo_accuracy", "epochs", "wall_time_s"):
            values = np.array([r[key] for r in mine], dtype=np.float64)
            entry[f"{key}_mean"] = float(values.mean())
            entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary[loss] = entry
    return summary


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """The final table: mean +- standard deviation over seeds."""
    lines = [
        f"{'loss':<12} {'seeds':>5}  {'true accuracy':>15}  {'pseudo accuracy':>15}  "
        f"{'epochs':>6}  {'time/run':>8}"
    ]
    for loss, s in summary.items():
        lines.append(
            f"{loss:<12} {s['n']:>5}  {s['true_accuracy_mean']:.3f} ± {s['true_accuracy_std']:.3f}"
            f"    {s['pseudo_accuracy_mean']:.3f} ± {s['pseudo_accuracy_std']:.3f}  "
            f"{s['epochs_mean']:>6.1f}  {s['wall_time_s_mean']:>6.0f} s"
        )
    return "\n".join(lines)


def load_sweep(
    profile: str,
    directory: Path | str | None = None,
    *,
    precision: str = "float32",
    classes: Sequence[str] = DEFAULT_CLASSES,
    overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The runs the sweep recorded for ``profile`` with these settings (one row per loss, seed).

    Only runs of one ``precision``, one class list and the same profile ``overrides`` (none by
    default) are returned, so a table built from them never mixes settings; rows recorded
    before these fields existed count as float32, default classes, no overrides. Runs a
    time budget left unfinished (``"finished": false``) are left out. Each row carries the
    run's ``date`` and ``device`` from the results store beside its scores.
    """
    entries = load_results(profile, directory).get(SWEEP_CHAPTER, {})
    wanted = (precision, list(classes), overrides or {})
    rows = []
    for key, entry in sorted(entries.items()):
        if "/seed" not in key:
            continue
        value = entry["value"]
        settings = (
            value.get("precision", "float32"),
            value.get("classes", list(DEFAULT_CLASSES)),
            value.get("overrides", {}),
        )
        if settings == wanted and value.get("finished", True):
            rows.append({**value, "date": entry.get("date"), "device": entry.get("device")})
    return rows


def sweep_table(rows: Sequence[dict[str, Any]]) -> str:
    """The sweep's summary table (regular reference first), or a note when nothing ran yet."""
    if not rows:
        return "No sweep results recorded for this profile yet: run scripts/sweep_losses.py."
    order = {
        name: i
        for i, name in enumerate((REFERENCE, "article", "pc", "nn", "forward", "scl_nl", "scl_exp"))
    }
    ordered = sorted(rows, key=lambda r: (order.get(r["loss"], 99), r["seed"]))
    dates = sorted({str(r["date"]) for r in rows if r.get("date")})
    devices = sorted({str(r["device"]) for r in rows if r.get("device")})
    return (
        format_summary(summarise(ordered))
        + f"\n(mean ± standard deviation over seeds; runs from {', '.join(dates) or '?'} "
        f"on {'; '.join(devices) or '?'})"
    )


def sweep_findings(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the sweep's table says, as values a chapter can quote.

    Returns the fewest seeds any loss has (``min_seeds``), the complementary losses ranked
    by mean true accuracy (``ranking``: ``(loss, mean, std)`` best first), the best one
    (``best_loss``), the reference (``crossentropy``) and ``article`` summaries when present,
    the losses whose mean beats ``article``'s and those below it (``above_article``,
    ``below_article``, best first; empty without ``article`` runs), and ``identical``: pairs
    of losses whose runs gave the same true accuracy and epoch count on every seed both ran
    (``forward`` and ``scl_nl`` should: they differ by a constant).
    """
    if not rows:
        raise ValueError("no sweep results to summarise: run scripts/sweep_losses.py first")
    summary = summarise(rows)
    ranking = sorted(
        (
            (loss, s["true_accuracy_mean"], s["true_accuracy_std"])
            for loss, s in summary.items()
            if loss != REFERENCE
        ),
        key=lambda item: -item[1],
    )
    per_seed = {
        loss: {r["seed"]: (r["true_accuracy"], r["epochs"]) for r in rows if r["loss"] == loss}
        for loss in summary
    }
    identical = [
        (a, b)
        for i, a in enumerate(summary)
        for b in list(summary)[i + 1 :]
        if (shared := per_seed[a].keys() & per_seed[b].keys())
        and all(per_seed[a][seed] == per_seed[b][seed] for seed in shared)
    ]
    article = summary.get("article")
    bar = article["true_accuracy_mean"] if article else None
    others = [] if bar is None else [(loss, mean) for loss, mean, _ in ranking if loss != "article"]
    return {
        "min_seeds": min(s["n"] for s in summary.values()),
        "ranking": ranking,
        "best_loss": ranking[0][0] if ranking else None,
        "reference": summary.get(REFERENCE),
        "article": article,
        "above_article": [loss for loss, mean in others if mean > bar],
        "below_article": [loss for loss, mean in others if mean < bar],
        "identical": identical,
    }


def select_by_validation(
    rows: Sequence[dict[str, Any]], metric: str = "val_pseudo_accuracy"
) -> tuple[str, dict[str, float]]:
    """The complementary loss a reader may call best without looking at the test set.

    Complementary runs have no true validation labels, so the choice rests on what they do
    have: each run's ``metric`` (``val_pseudo_accuracy``, higher is better, or ``val_loss``,
    lower is better; not comparable across losses) at its best epoch, averaged over seeds.

    Returns
    -------
    (loss, scores)
        The chosen loss and every complementary loss's mean score. Losses whose means are
        equal (up to rounding) tie; a tie goes to the loss whose score varies least over
        seeds, then to the first name.

    Raises
    ------
    ValueError
        Without complementary runs, or for a run recorded without its per-epoch history
        (runs recorded before it was kept: record them again with scripts/sweep_losses.py).
    """
    scores: dict[str, list[float]] = {}
    for row in rows:
        if row["loss"] == REFERENCE:
            continue
        values = row.get("history", {}).get(metric)
        if not values:
            raise ValueError(
                f"run {row['loss']} seed {row['seed']} has no {metric!r} history: record it "
                "again with scripts/sweep_losses.py (finished runs are loaded, not retrained)"
            )
        scores.setdefault(row["loss"], []).append(float(values[int(row["best_epoch"]) - 1]))
    if not scores:
        raise ValueError("no complementary runs to choose from")
    means = {loss: float(np.mean(v)) for loss, v in scores.items()}
    best = (min if metric == "val_loss" else max)(means.values())
    # A tie goes to the loss whose score varies least over seeds (then the name), never to
    # floating-point noise.
    tied = tied_with(means, best)
    return min(tied, key=lambda loss: (float(np.std(scores[loss])), loss)), means


def tied_with(means: dict[str, float], score: float) -> list[str]:
    """The losses whose mean score equals ``score`` up to rounding, in ``means``' order.

    Means of shares of the same validation images can differ only in their last bits: that is a
    tie, not a win (:func:`select_by_validation`).
    """
    return [loss for loss, mean in means.items() if abs(mean - score) <= 1e-9]


def cam_subset(y: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of ``n`` test images for the Grad-CAM chapters, balanced over the classes.

    The first images of each class in turn (round robin), so a small ``n`` still shows
    every class; ``None`` (or ``n >= len(y)``) keeps every image, in order.
    """
    y = np.asarray(y)
    if n is None or n >= len(y):
        return np.arange(len(y))
    per_class = [list(np.flatnonzero(y == c)) for c in np.unique(y)]
    chosen: list[int] = []
    while len(chosen) < n:
        for members in per_class:
            if members and len(chosen) < n:
                chosen.append(int(members.pop(0)))
    return np.sort(np.array(chosen, dtype=np.int64))
