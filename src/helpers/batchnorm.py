"""The batch-norm trap of short from-scratch runs, its fix, and the evidence.

The batch-norm trap
-------------------
BatchNormalization normalises with the statistics of the current batch while training
but with its *moving* statistics at inference. Those are an exponential moving average
(EMA) with ``momentum`` m: after a step, ``moving = m * moving + (1 - m) * batch``. With
Keras' default m = 0.99 the average spans about 1 / (1 - m) = 100 steps (half-life
ln 2 / -ln m ~ 69 steps) and starts from mean 0, variance 1. From scratch on ~400 training
images (26 steps of 16 per epoch) that is almost three epochs of *changing* weights: the
moving statistics describe a network that no longer exists, the error compounds through
Xception's 40 batch norms, and inference-mode accuracy sits at chance while the training
loss falls. A smaller momentum shortens the lag but averages fewer batches: on small
runs the statistics then become noisy, and the noise compounds through the 40 layers too.

The fix: precise batch norm
---------------------------
Before every validation pass (and so for the weights that early stopping keeps),
:func:`recalibrate_batchnorm` replaces the moving statistics by the exact population
statistics of a fixed set of training images under the *current* weights: one
training-mode forward pass, with each layer's batch means and variances pooled over all
the images (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021). Neither lag nor EMA
noise is left, whatever the number of steps, so it works at every profile; it costs one
forward pass over ``RECALIBRATION_IMAGES`` images per epoch (about a tenth of a laptop
epoch). :func:`batch_stats_accuracy` and the ``val_*_batch_stats`` history entries show the
evidence: they score the same images with batch statistics, which inference with
correct moving statistics should reproduce.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from helpers.data import preprocess

MONITOR_IMAGES = 256  # validation images scored with batch statistics each epoch, by default
RECALIBRATION_IMAGES = 128  # training images whose statistics replace the moving averages


def score(metric: str, probs: np.ndarray, y: np.ndarray) -> float:
    """``accuracy`` (argmax equals ``y``) or ``pseudo_accuracy`` (argmax differs from ``y``)."""
    hits = np.argmax(probs, axis=-1) == np.asarray(y).reshape(-1)
    return float(1.0 - hits.mean()) if metric == "pseudo_accuracy" else float(hits.mean())


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Inference-mode softmax outputs for uint8 images (moving statistics)."""
    out = [
        keras.ops.convert_to_numpy(model(preprocess(x[i : i + batch_size]), training=False))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out)


def batch_stats_predictions(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Softmax outputs with every BatchNorm using the current batch's own statistics.

    This is training-mode BatchNorm, computed statelessly: the model's moving statistics
    are left untouched. Feed shuffled, class-mixed images (as training batches are).
    """
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]
    out = []
    for start in range(0, len(x), batch_size):
        batch = preprocess(x[start : start + batch_size])
        probs, _ = model.stateless_call(trainable, frozen, batch, training=True)
        out.append(keras.ops.convert_to_numpy(probs))
    return np.concatenate(out)


def batch_stats_accuracy(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 32, seed: int = 0
) -> dict[str, float]:
    """Accuracy of ``model`` on ``(x, y)`` in inference mode and with batch statistics.

    Returns
    -------
    dict
        ``{"inference": ..., "batch_stats": ...}``. Equal values mean the moving statistics
        match the network; inference far below batch_stats is the batch-norm trap.
    """
    order = np.random.default_rng(seed).permutation(len(x))  # class-mixed batches
    x, y = x[order], np.asarray(y)[order]
    return {
        "inference": score("accuracy", predict_proba(model, x, batch_size), y),
        "batch_stats": score("accuracy", batch_stats_predictions(model, x, batch_size), y),
    }


class BatchStatsMonitor(keras.callbacks.Callback):  # type: ignore[misc]
    """Adds ``val_<metric>_batch_stats`` to the logs: the validation metric with batch statistics.

    Beside Keras' ``val_<metric>`` (inference mode) it shows per epoch whether the moving
    statistics keep up with the weights.
    """

    def __init__(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        metric: str,
        batch_size: int,
        images: int = MONITOR_IMAGES,
    ) -> None:
        super().__init__()
        order = np.random.default_rng(0).permutation(len(x))[:images]
        self.softmax_model, self.x, self.y = model, x[order], np.asarray(y)[order]
        self.metric, self.batch_size = metric, batch_size

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            probs = batch_stats_predictions(self.softmax_model, self.x, self.batch_size)
            logs[f"val_{self.metric}_batch_stats"] = score(self.metric, probs, self.y)


def _batchnorms(model: keras.Model) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batchnorm(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> None:
    """Set every BatchNorm's moving mean and variance to the exact statistics of ``x``.

    One training-mode pass over the uint8 images ``x`` (shuffle them: batches should be
    class-mixed, like training batches) under the current weights; per layer, the batch
    means and mean squares are pooled over all images, so the result does not depend on
    the momentum or on the history of the run. Only the moving statistics change.
    """
    layers = _batchnorms(model)
    if not layers or len(x) == 0:
        return
    frozen_vars = list(model.non_trainable_variables)
    slot = {id(v): i for i, v in enumerate(frozen_vars)}
    # With the moving statistics set to 0, a training-mode call returns (1 - m) * batch
    # statistic for each of them: the batch statistics, without touching the layers.
    frozen = [
        keras.ops.zeros(v.shape, v.dtype) if _is_moving_stat(v, layers) else v.value
        for v in frozen_vars
    ]
    trainable = [v.value for v in model.trainable_variables]
    sums = [np.zeros((2, *layer.moving_mean.shape), np.float64) for layer in layers]
    for start in range(0, len(x), batch_size):
        images = x[start : start + batch_size]
        _, new = model.stateless_call(trainable, frozen, preprocess(images), training=True)
        for total, layer in zip(sums, layers, strict=True):
            scale = 1.0 / (1.0 - layer.momentum)
            mean = keras.ops.convert_to_numpy(new[slot[id(layer.moving_mean)]]) * scale
            var = keras.ops.convert_to_numpy(new[slot[id(layer.moving_variance)]]) * scale
            total += len(images) * np.stack([mean, var + mean**2])
    for total, layer in zip(sums, layers, strict=True):
        mean, mean_sq = total / len(x)
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign(np.maximum(mean_sq - mean**2, 0.0).astype("float32"))


def _is_moving_stat(variable: Any, layers: list[Any]) -> bool:
    return any(variable is b.moving_mean or variable is b.moving_variance for b in layers)


class RecalibrateBatchNorm(keras.callbacks.Callback):  # type: ignore[misc]
    """Runs :func:`recalibrate_batchnorm` before every validation pass of ``fit``.

    Keras calls ``on_test_begin`` after an epoch's last step and before validation, and
    early stopping copies the weights after validation, so the validation loss, the
    early-stopping decision and the weights kept all use the recalibrated statistics.
    """

    def __init__(
        self, model: keras.Model, x: np.ndarray, images: int = RECALIBRATION_IMAGES, seed: int = 0
    ) -> None:
        super().__init__()
        order = np.random.default_rng(seed).permutation(len(x))[:images]
        self.softmax_model, self.x = model, x[order]

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        recalibrate_batchnorm(self.softmax_model, self.x)
