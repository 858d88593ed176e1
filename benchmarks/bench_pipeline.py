"""Is augmentation the bottleneck of training?  (A benchmark, not a test.)

Same Xception, same run, same images at the first ``--sizes`` entry (the ``laptop`` 96 px
by default): epochs trained on the augmented input pipeline (``helpers.augment``: seeded
warps and preprocessing in worker threads) alternate with epochs trained on the same
images already preprocessed in memory, without augmentation. The median epoch times give
the ratio, which should be at most 1.15. Also printed for every size: training and
inference images per second (inference through ``predict_proba``, preprocessing included).

The table comes first; the last line is exactly ``augmented_over_plain=<ratio>``.
Quick check (one to two minutes on 2 busy CPU cores)::

    python benchmarks/bench_pipeline.py --images 128 --epochs 2 --sizes 96
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from helpers.augment import AugmentedBatches
from helpers.data import preprocess
from helpers.profiles import get_profile
from helpers.training import compile_for_training, predict_proba, resolve_loss
from helpers.xception import build_xception


def images(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images with balanced labels (the timing does not depend on content)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 3


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class EpochTimer(keras.callbacks.Callback):  # type: ignore[misc]
    """Wall time of the last epoch: from its start to its end, without ``fit``'s set-up.

    (Setting up ``fit`` on NumPy arrays sometimes takes seconds on TensorFlow; a real
    training run pays that once, not per epoch, so it is left out of both timings.)
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def measure(size: int, n: int, epochs: int, batch: int, with_plain: bool) -> dict[str, float]:
    """Median epoch times (augmented, and plain if asked) and inference throughput."""
    x, y = images(n, size)
    model = build_xception((size, size, 3), 3, seed=0)
    loss, metric, _ = resolve_loss("crossentropy", 3)
    trainer = compile_for_training(model, loss, metric, get_profile("laptop"))
    augmented = AugmentedBatches(x, y, batch, seed=0)
    x_plain = preprocess(x)
    timer = EpochTimer()

    def plain_epoch() -> float:
        trainer.fit(x_plain, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timer])
        return timer.seconds

    def augmented_epoch() -> float:
        trainer.fit(augmented, epochs=1, verbose=0, callbacks=[timer])
        return timer.seconds

    augmented_epoch()  # warm-up: builds the step functions for both inputs
    if with_plain:
        plain_epoch()
    times: dict[str, list[float]] = {"augmented": [], "plain": []}
    for _ in range(epochs):  # alternate, so changes in machine load hit both alike
        times["augmented"].append(augmented_epoch())
        if with_plain:
            times["plain"].append(plain_epoch())
    predict_proba(model, x[:batch], batch)  # warm-up
    infer = timed(lambda: predict_proba(model, x, 2 * batch))
    out = {"augmented_s": statistics.median(times["augmented"]), "infer_img_s": n / infer}
    if with_plain:
        out["plain_s"] = statistics.median(times["plain"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images per epoch (first size)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each kind")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 299])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--images-large", type=int, default=64, help="images per epoch at the other sizes"
    )
    args = parser.parse_args()

    device = "GPU" if keras.config.backend() and _has_gpu() else "CPU"
    print(f"backend {keras.backend.backend()}, {device}, {os.cpu_count()} CPU threads")
    print(
        f"{'size':>5} {'images':>7} {'epoch plain s':>14} {'epoch augm. s':>14} "
        f"{'train img/s':>12} {'infer img/s':>12}"
    )
    ratio = float("nan")
    for i, size in enumerate(args.sizes):
        n = args.images if i == 0 else args.images_large
        r = measure(size, n, args.epochs if i == 0 else 1, args.batch, with_plain=i == 0)
        plain = f"{r['plain_s']:14.2f}" if "plain_s" in r else f"{'-':>14}"
        print(
            f"{size:>5} {n:>7} {plain} {r['augmented_s']:14.2f} "
            f"{n / r['augmented_s']:12.1f} {r['infer_img_s']:12.1f}",
            flush=True,
        )
        if i == 0:
            ratio = r["augmented_s"] / r["plain_s"]
    print(f"augmented_over_plain={ratio:.2f}")


def _has_gpu() -> bool:
    from helpers.profiles import gpu_available

    return gpu_available()


if __name__ == "__main__":
    main()
