"""Train a queue of runs (every complementary loss over seeds, or any list), resumably.

Each run trains the book's Xception with :func:`helpers.training.train_model` on complementary
labels only (training *and* validation labels; the true labels are used for nothing but the
final test score), then records its true and pseudo test accuracy, epochs and wall time in the
results store under ``complementary_sweep/<key>`` (``helpers.runs.RunSpec.key``: e.g.
``article/seed0``, or ``article/seed0/image_size160`` for a run with an overridden profile
field). Ordinary cross-entropy on the true labels is trained the same way as the reference
row. Finished runs are loaded from the artifacts, unless ``--retrain``; a run the results
store holds as finished but whose weights are not on this machine (a new machine, an emptied
``artifacts/``) is skipped, so the store keeps the run it recorded; an interrupted run
resumes from its last finished epoch (laptop and paper profiles checkpoint every epoch), so
the same command can simply be started again. ``--hours`` ends the queue on time: the run
that would not finish is stopped after its last epoch that fits and recorded as unfinished
(``"finished": false``, scored with its best epoch so far) until the same command finishes it.

Usage::

    python scripts/sweep_losses.py --profile laptop
    python scripts/sweep_losses.py --profile laptop --losses article --seeds 0 1 --set image_size=160
    nohup python scripts/sweep_losses.py --profile laptop --runs runs.txt --log runs.log &
    python scripts/sweep_losses.py --profile laptop --runs runs.txt --hours 2.5
    KERAS_BACKEND=jax python scripts/sweep_losses.py --profile paper --losses article nn --seeds 0

A runs file lists one run per line (see ``helpers.runs``), e.g.
``loss=article seed=0 image_size=299 precision=float32``.

Only ``keras.ops``-based helpers are used, so the JAX backend runs it without TensorFlow.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from helpers.complementary import LOSS_NAMES
from helpers.data import DEFAULT_CLASSES
from helpers.experiment import (
    REFERENCE,
    SWEEP_CHAPTER,
    Experiment,
    format_summary,
    is_trained,
    prepare_experiment,
    score_run,
    summarise,
    train_run,
)
from helpers.manifest import format_manifest, run_manifest
from helpers.precision import CHOICES, resolve_precision
from helpers.profiles import Profile, get_profile, parse_overrides
from helpers.results import load_results, record
from helpers.runs import RunSpec, estimate_seconds, grid, parse_runs, summary_key

CHAPTER = SWEEP_CHAPTER  # where the runs are recorded (and where chapters read them)


def train_and_score(
    data: Experiment,
    loss: str,
    seed: int,
    profile: Profile,
    *,
    max_per_class: int | None = None,
    retrain: bool = False,
    verbose: bool = True,
    precision: str | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train (or load) one model and score it on the test set; return its result row.

    A run that ``deadline`` stopped is scored with its best epoch so far and marked
    ``"finished": False``.
    """
    trained = train_run(
        data,
        loss,
        seed,
        profile,
        max_per_class=max_per_class,
        retrain=retrain,
        verbose=verbose,
        precision=precision,
        deadline=deadline,
    )
    scores = score_run(data, trained.model, batch_size=profile.batch_size)
    del scores["probabilities"]
    return {
        "loss": loss,
        "seed": seed,
        **scores,
        "epochs": int(trained.epochs_run),
        "best_epoch": int(trained.best_epoch),
        "wall_time_s": float(trained.wall_time_s),
        "loaded_from_cache": bool(trained.loaded_from_cache),
        "finished": bool(trained.finished),
        "train_images": int(len(data.idx_fit)),
        "val_images": int(len(data.idx_val)),
        "test_images": int(len(data.dataset.y_test)),
        "precision": trained.meta["precision"],
        "classes": list(data.dataset.class_names),
        "image_size": int(profile.image_size),
        "overrides": dict(profile.extra.get("overrides", {})),
        "history": {k: [round(float(v), 5) for v in vs] for k, vs in trained.history.items()},
    }


def format_row(row: dict[str, Any]) -> str:
    """One printed line per run."""
    cached = "  (loaded)" if row["loaded_from_cache"] else ""
    cached += "" if row.get("finished", True) else "  (unfinished: best epoch so far)"
    return (
        f"{row['loss']:<12} seed {row['seed']}: true acc {row['true_accuracy']:.3f}  "
        f"pseudo acc {row['pseudo_accuracy']:.3f} (expected {row['expected_pseudo_accuracy']:.3f})  "
        f"epochs {row['epochs']:>3}  {row['wall_time_s']:7.1f} s{cached}"
    )


def run_queue(
    profile: Profile,
    specs: Sequence[RunSpec],
    *,
    results_dir: str | None = None,
    retrain: bool = False,
    max_per_class: int | None = None,
    verbose: bool = True,
    command: str | None = None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Train (or load, or resume) every run in ``specs`` in order; record each; return rows.

    Before each run it prints how many runs remain and, once one has been trained, an
    estimate of the time they need. With a ``deadline`` (``time.time()``) no run starts
    after it, and the run it interrupts is recorded unfinished; summaries leave such runs out.
    """
    manifest = run_manifest(profile)
    print(format_manifest(manifest), flush=True)
    experiments: dict[tuple[Any, ...], Experiment] = {}
    extra = {"device": manifest["device"], "command": command, "max_per_class": max_per_class}
    rows: list[dict[str, Any]] = []
    summaries: dict[str, dict[str, Any]] = {}  # the summary keys, in order
    trained: list[tuple[int, float]] = []
    for number, spec in enumerate(specs, 1):
        if deadline is not None and time.time() >= deadline:
            print(f"time is up: {len(specs) - number + 1} runs not started", flush=True)
            break
        run_profile = spec.profile(profile)
        left = [s.profile(profile).image_size for s in specs[number - 1 :]]
        estimate = estimate_seconds(trained, left)
        eta = f", about {estimate / 60:.0f} min" if estimate is not None else ""
        print(f"run {number}/{len(specs)}: {spec.describe()} ({len(left)} left{eta})", flush=True)
        where = (spec.classes, run_profile.image_size, max_per_class)
        if where not in experiments:
            experiments[where] = prepare_experiment(run_profile, max_per_class, spec.classes)
        if not retrain and recorded_elsewhere(
            experiments[where], spec, profile, results_dir, max_per_class
        ):
            continue
        row = train_and_score(
            experiments[where],
            spec.loss,
            spec.seed,
            run_profile,
            max_per_class=max_per_class,
            retrain=retrain,
            verbose=verbose,
            precision=spec.precision,
            deadline=deadline,
        )
        key = spec.key(profile, row["precision"])
        record(
            CHAPTER,
            key,
            row,
            profile=profile.name,
            seed=spec.seed,
            wall_time_s=row["wall_time_s"],
            directory=results_dir,
            **extra,
        )
        print(format_row(row), flush=True)
        if not row["loaded_from_cache"]:
            trained.append((run_profile.image_size, row["wall_time_s"]))
        rows.append(row)
        if not row["finished"]:
            print(f"time is up: {len(specs) - number} runs not started", flush=True)
            break
        # Summarised at once, not at the end: a queue killed later keeps it current.
        variant = summary_key(key, spec.seed)
        summaries[variant] = record_summary(profile.name, results_dir, variant, extra)
    for variant, summary in summaries.items():
        print(f"{variant.replace('/summary', '')}:\n{format_summary(summary)}", flush=True)
    return rows


def record_summary(
    profile: str, results_dir: str | None, variant: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """Record the summary of every finished run of ``variant`` (earlier queues' seeds too)."""
    group = recorded_variant(profile, results_dir, variant)
    summary = summarise(group)
    record(CHAPTER, variant, summary[group[0]["loss"]], profile=profile, directory=results_dir,
           **extra)  # fmt: skip
    return summary


def recorded_elsewhere(
    data: Experiment,
    spec: RunSpec,
    base: Profile,
    results_dir: str | None,
    max_per_class: int | None,
) -> bool:
    """Whether the store holds ``spec`` as a finished run whose weights are not here (and says so).

    Training it again would replace the recorded run by another one, possibly from another
    machine, under the same key; ``--retrain`` does that on purpose.
    """
    key = spec.key(base, resolve_precision(spec.precision).policy)
    entry = load_results(base.name, results_dir).get(CHAPTER, {}).get(key)
    if entry is None or not entry["value"].get("finished", True):
        return False
    run_profile = spec.profile(base)
    if is_trained(data, spec.loss, spec.seed, run_profile, spec.precision, max_per_class):
        return False
    print(
        f"  recorded on {entry['date']} ({entry.get('device', 'device not recorded')}), but its "
        "weights are not on this machine: skipped, the store keeps that run "
        "(--retrain trains it again and replaces it)",
        flush=True,
    )
    return True


def recorded_variant(profile: str, results_dir: str | None, variant: str) -> list[dict[str, Any]]:
    """Every finished run recorded for the summary key ``variant`` (``<loss>/summary/...``),
    whichever queue ran it, so that a summary counts all seeds of its settings."""
    entries = load_results(profile, results_dir).get(CHAPTER, {})
    return [
        entry["value"]
        for key, entry in sorted(entries.items())
        if "/summary" not in key
        and summary_key(key, entry["value"]["seed"]) == variant
        and entry["value"].get("finished", True)
    ]


class Tee:
    """Writes to the console and appends to a log file, line-buffered (for ``--log``)."""

    def __init__(self, console: TextIO, path: Path) -> None:
        self.console, self.file = console, open(path, "a", encoding="utf-8", buffering=1)

    def write(self, text: str) -> int:
        self.file.write(text)
        return self.console.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.console.flush()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile",
        default=None,
        help="smoke, laptop or paper "
        "(default: $BOOK_PROFILE, else paper with a GPU and laptop without)",
    )
    parser.add_argument(
        "--losses",
        nargs="+",
        default=[*LOSS_NAMES, REFERENCE],
        choices=[*LOSS_NAMES, REFERENCE],
        metavar="LOSS",
        help=f"losses to train (default: all of {', '.join(LOSS_NAMES)} and {REFERENCE})",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=None, help="seeds (default: the profile's)"
    )
    parser.add_argument(
        "--results-dir",
        default=None,
        help="results store directory (default: $BOOK_RESULTS_DIR or book/results)",
    )
    parser.add_argument(
        "--retrain", action="store_true", help="train again even where saved weights exist"
    )
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=None,
        help="cap images per class (quick checks only; default: the book's data)",
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        default=list(DEFAULT_CLASSES),
        help=f"class folders, in label order (default: {' '.join(DEFAULT_CLASSES)})",
    )
    parser.add_argument(
        "--precision",
        choices=CHOICES,
        default=None,
        help="float32, mixed_bfloat16 or auto (default: $BOOK_PRECISION, else auto)",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="override profile fields for every run, e.g. --set image_size=160 patience=15",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="a file listing the runs, one per line (loss=L seed=S [FIELD=VALUE ...]); "
        "replaces --losses/--seeds/--classes/--precision/--set",
    )
    parser.add_argument(
        "--log", type=Path, default=None, help="also append every printed line to this file"
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=None,
        help="stop after this many hours, at the end of the last epoch that fits; the "
        "interrupted run is recorded unfinished and the same command resumes it",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser.parse_args(argv)


def queue_from_args(args: argparse.Namespace, profile: Profile) -> list[RunSpec]:
    """The runs the arguments ask for (checked before any training starts)."""
    if args.runs is not None:
        specs = parse_runs(args.runs.read_text(encoding="utf-8"))
    else:
        seeds = list(args.seeds) if args.seeds is not None else list(profile.seeds)
        overrides = parse_overrides(args.set)
        specs = grid(args.losses, seeds, args.classes, args.precision, overrides)
    valid = [*LOSS_NAMES, REFERENCE]
    for spec in specs:
        if spec.loss not in valid:
            raise ValueError(f"Unknown loss {spec.loss!r} in {spec.describe()!r}: use {valid}.")
        # Unknown fields and bad values fail here, not hours later.
        run_profile = spec.profile(profile)
        resolve_precision(spec.precision)
        if args.hours is not None and not run_profile.checkpoint:
            raise ValueError(
                f"--hours needs checkpoints, or an unfinished run is lost: {spec.describe()!r} "
                f"runs the {profile.name!r} profile without them (add checkpoint=true)."
            )
    return specs


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    profile = get_profile(args.profile)
    command = "python scripts/sweep_losses.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    if args.hours is not None and not args.hours > 0:
        print(f"error: --hours must be positive, not {args.hours}", file=sys.stderr)
        return 2
    try:
        specs = queue_from_args(args, profile)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    console = sys.stdout
    if args.log is not None:
        sys.stdout = Tee(console, args.log)  # type: ignore[assignment]
    start = time.perf_counter()
    deadline = None if args.hours is None else time.time() + args.hours * 3600
    try:
        run_queue(
            profile,
            specs,
            results_dir=args.results_dir,
            retrain=args.retrain,
            max_per_class=args.max_per_class,
            verbose=not args.quiet,
            command=command,
            deadline=deadline,
        )
        print(f"Sweep finished in {(time.perf_counter() - start) / 60:.1f} min.", flush=True)
    finally:
        sys.stdout = console
    return 0


if __name__ == "__main__":
    sys.exit(main())
