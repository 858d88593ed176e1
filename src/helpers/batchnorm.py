"""The batch-norm trap of short from-scratch runs, its fix, and the evidence.

The batch-norm trap
-------------------
BatchNormalization normalises with the statistics of the current batch while training
but with its *moving* statistics at inference. Those are an exponential moving average
(EMA) with ``momentum`` m: after a step, ``moving = m * moving + (1 - m) * batch``. With
Keras' default m = 0.99 the average spans about 1 / (1 - m) = 100 steps, and its
half-life is ln 2 / -ln m ~ 69 steps. From scratch on ~400 training images (26 steps of
16 per epoch) that is almost three epochs of *changing* weights: the moving statistics
describe a network that no longer exists, the error compounds through Xception's 40
batch norms, and inference-mode accuracy sits at chance while the training loss falls.

The fix (:func:`bn_momentum_for`) sizes the EMA to the run: its half-life is a quarter of
an epoch, ``m = 0.5 ** (1 / (0.25 * steps_per_epoch))``, clipped to [0.5, 0.99]. At the end
of every epoch (when validation and early stopping look at the model) the statistics are
then dominated by the last quarter-epoch of batches, and the initial values (mean 0,
variance 1) weigh ``0.5 ** 4 = 1/16`` after the first epoch. Large data sets keep the 0.99
ceiling. :func:`batch_stats_accuracy` and the ``val_*_batch_stats`` history entries show the
evidence: they score the same images with batch statistics, which is what the moving
statistics should reproduce.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from helpers.data import preprocess

HALF_LIFE_EPOCHS = 0.25
MOMENTUM_RANGE = (0.5, 0.99)
MONITOR_IMAGES = 256  # validation images scored with batch statistics each epoch


def bn_momentum_for(steps_per_epoch: int, half_life_epochs: float = HALF_LIFE_EPOCHS) -> float:
    """BatchNorm momentum whose moving average has a half-life of ``half_life_epochs``.

    ``m = 0.5 ** (1 / (half_life_epochs * steps_per_epoch))``, clipped to [0.5, 0.99]:
    the moving statistics follow the weights within a fraction of an epoch instead of the
    ~69-step half-life of Keras' default 0.99 (see the module docstring).

    Examples
    --------
    26 steps per epoch (409 images, batch 16) give 0.897; 4 steps give 0.5; 400 give 0.99.
    """
    if steps_per_epoch < 1 or half_life_epochs <= 0:
        raise ValueError(
            f"Need steps_per_epoch >= 1 and half_life_epochs > 0, got {steps_per_epoch} "
            f"and {half_life_epochs}."
        )
    half_life_steps = half_life_epochs * steps_per_epoch
    low, high = MOMENTUM_RANGE
    return float(min(high, max(low, 0.5 ** (1.0 / half_life_steps))))


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
        self, model: keras.Model, x: np.ndarray, y: np.ndarray, metric: str, batch_size: int
    ) -> None:
        super().__init__()
        order = np.random.default_rng(0).permutation(len(x))[:MONITOR_IMAGES]
        self.softmax_model, self.x, self.y = model, x[order], np.asarray(y)[order]
        self.metric, self.batch_size = metric, batch_size

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            probs = batch_stats_predictions(self.softmax_model, self.x, self.batch_size)
            logs[f"val_{self.metric}_batch_stats"] = score(self.metric, probs, self.y)
