"""Train every complementary loss over several seeds on the same data, split and model.

Each run trains the book's Xception with :func:`helpers.training.train_model` on complementary
labels only (training *and* validation labels; the true labels are used for nothing but the
final test score), then records its true and pseudo test accuracy, epochs and wall time in the
results store under ``complementary_sweep/<loss>/seed<seed>``. Ordinary cross-entropy on the true
labels is trained the same way as the reference row. Models already trained are loaded from
the artifacts, unless ``--retrain``.

Usage::

    python scripts/sweep_losses.py --profile laptop
    KERAS_BACKEND=jax python scripts/sweep_losses.py --profile paper --losses article nn --seeds 0

Only ``keras.ops``-based helpers are used, so the JAX backend runs it without TensorFlow.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any

from helpers.complementary import LOSS_NAMES
from helpers.experiment import (
    REFERENCE,
    SWEEP_CHAPTER,
    Experiment,
    format_summary,
    prepare_experiment,
    score_run,
    summarise,
    train_run,
)
from helpers.manifest import format_manifest, run_manifest
from helpers.profiles import Profile, get_profile
from helpers.results import record

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
) -> dict[str, Any]:
    """Train (or load) one model and score it on the test set; return its result row."""
    trained = train_run(
        data, loss, seed, profile, max_per_class=max_per_class, retrain=retrain, verbose=verbose
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
        "train_images": int(len(data.idx_fit)),
        "val_images": int(len(data.idx_val)),
        "test_images": int(len(data.dataset.y_test)),
    }


def format_row(row: dict[str, Any]) -> str:
    """One printed line per run."""
    cached = "  (loaded)" if row["loaded_from_cache"] else ""
    return (
        f"{row['loss']:<12} seed {row['seed']}: true acc {row['true_accuracy']:.3f}  "
        f"pseudo acc {row['pseudo_accuracy']:.3f} (expected {row['expected_pseudo_accuracy']:.3f})  "
        f"epochs {row['epochs']:>3}  {row['wall_time_s']:7.1f} s{cached}"
    )


def run_sweep(
    profile: Profile,
    losses: Sequence[str],
    seeds: Sequence[int],
    *,
    results_dir: str | None = None,
    retrain: bool = False,
    max_per_class: int | None = None,
    verbose: bool = True,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """Train every ``loss`` for every ``seed``, record each result; return the result rows."""
    manifest = run_manifest(profile)
    print(format_manifest(manifest), flush=True)
    data = prepare_experiment(profile, max_per_class)
    extra = {"device": manifest["device"], "command": command, "max_per_class": max_per_class}
    rows = []
    for loss in losses:
        for seed in seeds:
            row = train_and_score(
                data,
                loss,
                seed,
                profile,
                max_per_class=max_per_class,
                retrain=retrain,
                verbose=verbose,
            )
            record(
                CHAPTER,
                f"{loss}/seed{seed}",
                row,
                profile=profile.name,
                seed=seed,
                wall_time_s=row["wall_time_s"],
                directory=results_dir,
                **extra,
            )
            print(format_row(row), flush=True)
            rows.append(row)
    summary = summarise(rows)
    for loss, entry in summary.items():
        record(
            CHAPTER, f"{loss}/summary", entry, profile=profile.name, directory=results_dir, **extra
        )
    print(format_summary(summary), flush=True)
    return rows


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
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    profile = get_profile(args.profile)
    seeds = list(args.seeds) if args.seeds is not None else list(profile.seeds)
    command = "python scripts/sweep_losses.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    start = time.perf_counter()
    run_sweep(
        profile,
        args.losses,
        seeds,
        results_dir=args.results_dir,
        retrain=args.retrain,
        max_per_class=args.max_per_class,
        verbose=not args.quiet,
        command=command,
    )
    print(f"Sweep finished in {(time.perf_counter() - start) / 60:.1f} min.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
