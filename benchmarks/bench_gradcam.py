"""How fast is the batched multi-layer Grad-CAM pass?  (A benchmark, not a test.)

On the CPU, TensorFlow backend, Xception at the ``laptop`` size (96 px), N images x L layers:

(a) the keras.io example's loop: per image and per layer, a new gradient model and a tape;
(b) ``helpers.gradcam.grad_cam``: one forward + backward pass for the whole batch and all
    layers (activation gradients only), maps included;
(c) the floor: one compiled forward + backward pass of the same batch with the gradients of
    all trainable weights (what one training step costs, without the update).

Targets: (b) >= 20x faster than (a), and (b) no slower than (c).  The last printed line is
``speedup_vs_loop=<a/b> ratio_vs_floor=<b/c>``.  Quick check (well under a minute)::

    python benchmarks/bench_gradcam.py --images 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from helpers import gradcam as gc


def build_model(size: int) -> keras.Model:
    from helpers.xception import build_xception

    return build_xception((size, size, 3), num_classes=3, seed=0)


def keras_io_heatmap(img_array: np.ndarray, model: keras.Model, layer_name: str) -> np.ndarray:
    """The keras.io Grad-CAM example, verbatim in spirit (logits model, one image)."""
    import tensorflow as tf

    logits = model.get_layer("logits").output
    grad_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, logits])
    with tf.GradientTape() as tape:
        layer_output, preds = grad_model([img_array])
        pred_index = tf.argmax(preds[0])
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = layer_output[0] @ pooled_grads[..., tf.newaxis]
    return np.asarray(tf.maximum(tf.squeeze(heatmap, -1), 0))


def floor_step(model: keras.Model) -> Callable[[np.ndarray], Any]:
    """Compiled forward + backward with weight gradients, as in a training step."""
    import tensorflow as tf

    logits_model = keras.Model(model.inputs, model.get_layer("logits").output)

    @tf.function(reduce_retracing=True)  # type: ignore[untyped-decorator]
    def step(x: Any) -> Any:
        with tf.GradientTape() as tape:
            z = logits_model(x, training=False)
            score = tf.reduce_sum(tf.reduce_max(z, axis=-1))
        return tape.gradient(score, logits_model.trainable_variables)

    compiled: Callable[[np.ndarray], Any] = step
    return compiled


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="batch size N (default 64)")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    parser.add_argument(
        "--layers",
        nargs="+",
        default=list(gc.ORIGINAL_LAYERS),
        help="layer names (default: the original three)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed repeats of (b) and (c); median"
    )
    args = parser.parse_args()
    if keras.backend.backend() != "tensorflow":
        raise SystemExit(
            "The loop baseline (a) is the keras.io TensorFlow example: use KERAS_BACKEND=tensorflow."
        )

    model = build_model(args.size)
    gc.check_layers(model, args.layers)
    x = (
        np.random.default_rng(0)
        .uniform(-1, 1, (args.images, args.size, args.size, 3))
        .astype("float32")
    )
    floor = floor_step(model)

    # warm-up: trace / compile everything once, untimed
    keras_io_heatmap(x[:1], model, args.layers[0])
    batched = gc.grad_cam(model, x, args.layers, batch_size=args.images, upsample_maps=False)
    floor(x)

    start = time.perf_counter()
    loop = {
        n: np.stack([keras_io_heatmap(x[i : i + 1], model, n) for i in range(len(x))])
        for n in args.layers
    }
    t_loop = time.perf_counter() - start
    t_batched = timed(
        lambda: gc.grad_cam(model, x, args.layers, batch_size=args.images), args.repeats
    )
    t_floor = timed(lambda: floor(x), args.repeats)

    gap = max(
        float(np.abs(gc.normalise(loop[n]) - gc.normalise(batched.map(n))).max())
        for n in args.layers
    )
    pairs = len(x) * len(args.layers)
    print(
        f"backend={keras.backend.backend()} cpus={os.cpu_count()} images={len(x)} size={args.size} "
        f"layers={','.join(args.layers)} repeats={args.repeats}"
    )
    print(f"check: max |loop - batched| of per-map normalised maps = {gap:.1e}")
    print(f"{'method':<52}{'seconds':>10}{'ms per image-layer':>20}")
    for name, t in (
        ("(a) keras.io loop: model + tape per image and layer", t_loop),
        ("(b) helpers.gradcam.grad_cam: one batched pass", t_batched),
        ("(c) floor: forward+backward with weight gradients", t_floor),
    ):
        print(f"{name:<52}{t:>10.3f}{1000 * t / pairs:>20.2f}")
    print(f"speedup_vs_loop={t_loop / t_batched:.2f} ratio_vs_floor={t_batched / t_floor:.2f}")


if __name__ == "__main__":
    main()
