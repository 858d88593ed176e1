"""float32 against mixed bfloat16: training and inference speed.  (A benchmark, not a test.)

The book's Xception, built once per precision and size (``helpers.xception.build_xception``
with ``precision=``), trains on the book's augmented input pipeline for ``--epochs`` timed
epochs after a warm-up epoch, and then predicts the same images. The two precisions
alternate epoch by epoch at each size, so changes in machine load hit both alike; the
median epoch gives the training speed.

It also prints what ``BOOK_PRECISION=auto`` would choose on this machine, and why. The
last line is exactly ``bf16_over_fp32_train=<ratio at the first size> flags=<CPU flags seen>``,
so every measured ratio comes with the hardware that produced it: above 1 on a CPU with
AMX-BF16 or a recent GPU, about 1 with AVX512-BF16 alone, far below 1 where the CPU emulates
bfloat16. ``helpers.precision.auto_precision`` follows those facts. Quick check (about two minutes on 2 CPU cores)::

    python benchmarks/bench_precision.py --sizes 96 --images 32 --epochs 1
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
from bench_pipeline import EpochTimer  # this folder is on sys.path when run as a script

from helpers.augment import AugmentedBatches
from helpers.manifest import device_name
from helpers.precision import POLICIES, auto_precision, cpu_flags
from helpers.profiles import get_profile
from helpers.training import compile_for_training, predict_proba, resolve_loss
from helpers.xception import build_xception


def cpu_model() -> str:
    """The CPU's brand string, where py-cpuinfo can read it."""
    try:
        import cpuinfo

        return str(cpuinfo.get_cpu_info().get("brand_raw", "unknown CPU"))
    except Exception:
        return "unknown CPU"


def measure(size: int, n: int, epochs: int, batch: int) -> dict[str, dict[str, float]]:
    """Per precision: median training and inference images per second at ``size``."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = np.arange(n) % 3
    loss, metric, _ = resolve_loss("crossentropy", 3)
    runs = {}
    for policy in POLICIES:
        model = build_xception((size, size, 3), 3, seed=0, precision=policy)
        trainer = compile_for_training(model, loss, metric, get_profile("laptop"))
        runs[policy] = (model, trainer, AugmentedBatches(x, y, batch, seed=0), EpochTimer())
    seconds: dict[str, list[float]] = {policy: [] for policy in POLICIES}
    for repeat in range(epochs + 1):  # the first round is the warm-up (tracing, allocation)
        for policy, (_, trainer, batches, timer) in runs.items():
            trainer.fit(batches, epochs=1, verbose=0, callbacks=[timer])
            if repeat:
                seconds[policy].append(timer.seconds)
    out = {}
    for policy, (model, *_) in runs.items():
        predict_proba(model, x[:batch], batch)  # warm-up
        start = time.perf_counter()
        predict_proba(model, x, 2 * batch)
        out[policy] = {
            "train": n / statistics.median(seconds[policy]),
            "infer": n / (time.perf_counter() - start),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 299])
    parser.add_argument("--images", type=int, default=64, help="images per epoch, first size")
    parser.add_argument(
        "--images-large", type=int, default=16, help="images per epoch at the other sizes"
    )
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per precision")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    print(f"backend {keras.backend.backend()}, {device_name()}, {cpu_model()}")
    print(f"CPU flags of interest: {', '.join(flags) or 'none'}")
    print(f"auto would choose: {auto_precision()}")
    print(
        f"{'size':>5} {'images':>7} {'fp32 train':>11} {'bf16 train':>11} "
        f"{'fp32 infer':>11} {'bf16 infer':>11}   (images per second)"
    )
    ratio = float("nan")
    for i, size in enumerate(args.sizes):
        n = args.images if i == 0 else args.images_large
        r = measure(size, n, args.epochs, args.batch)
        fp32, bf16 = r["float32"], r["mixed_bfloat16"]
        print(
            f"{size:>5} {n:>7} {fp32['train']:11.1f} {bf16['train']:11.1f} "
            f"{fp32['infer']:11.1f} {bf16['infer']:11.1f}",
            flush=True,
        )
        if i == 0:
            ratio = bf16["train"] / fp32["train"]
    print(f"bf16_over_fp32_train={ratio:.2f} flags={','.join(flags) or 'none'}")


if __name__ == "__main__":
    main()
