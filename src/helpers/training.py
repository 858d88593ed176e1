"""One training entry point for ordinary and complementary labels, and evaluation helpers.

``train_model`` builds Xception, trains its ``logits`` sub-model (every loss here is defined
on logits) on augmented batches with early stopping on the validation loss, saves the run
atomically (``helpers.artifacts``) and, on a later call, loads it instead of retraining.

Before every validation pass the BatchNorm statistics are re-estimated on training images
(``helpers.batchnorm``: why the moving averages fail on small from-scratch runs), unless the
profile's ``recalibrate_bn`` is off (the original's plain Keras moving averages).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from helpers import artifacts, checkpoint
from helpers.augment import AugmentedBatches
from helpers.batchnorm import (
    MONITOR_IMAGES,
    BatchStatsMonitor,
    RecalibrateBatchNorm,
    score,
)
from helpers.batchnorm import predict_proba as predict_eagerly
from helpers.data import preprocess, stratified_split
from helpers.precision import resolve_precision
from helpers.profiles import Profile, override_tag
from helpers.xception import build_xception, logits_model

# The profile fields that change a training run (a cached run with other values is stale).
TRAINING_FIELDS = (
    "name",
    "image_size",
    "batch_size",
    "learning_rate",
    "max_epochs",
    "patience",
    "max_train_images",
    "amsgrad",
    "stop_on",
    "extra_outputs",
    "recalibrate_bn",
    "lr_decay",
    "middle_blocks",
)
# Fields added after runs were saved: at these defaults they stay out of a run's identity.
LATER_DEFAULTS: dict[str, Any] = {
    "stop_on": "validation",
    "extra_outputs": 0,
    "recalibrate_bn": True,
    "lr_decay": 0.0,
    "middle_blocks": 8,
}


def _training_fields(profile: dict[str, Any]) -> dict[str, Any]:
    """The part of a profile that shapes training (runs saved with a fuller profile compare).

    The fields of ``LATER_DEFAULTS`` appear only away from their defaults, so runs saved
    before those fields existed still load.
    """
    fields = {k: profile.get(k) for k in TRAINING_FIELDS}
    for name, default in LATER_DEFAULTS.items():
        if fields[name] in (None, default):
            del fields[name]
    return fields


def _shown(directory: Path) -> str:
    """``<profile>/<backend>-<precision>/<run>``: where a run lives, without this machine's absolute path."""
    return "/".join(directory.parts[-3:])


@dataclass
class TrainedModel:
    """A trained (or loaded) model and the record of its training.

    Attributes
    ----------
    model
        The softmax model (output layer ``predictions``).
    history
        Per-epoch values: ``loss``, ``val_loss``, the metric (``accuracy`` or
        ``pseudo_accuracy``), its ``val_`` version and its ``val_..._batch_stats`` version.
    epochs_run
        Epochs actually trained (early stopping may end before ``max_epochs``).
    best_epoch
        1-based epoch with the lowest validation loss, whose weights the model holds.
    wall_time_s
        Training time in seconds (of the original run when loaded from the cache).
    loaded_from_cache
        Whether the run was loaded instead of trained.
    directory
        Where the run's artifacts live.
    meta
        What was trained how: loss, seed, image counts, BatchNorm handling, ...
    finished
        ``False`` for a run stopped by ``train_model``'s ``deadline``: the model holds its
        best epoch so far, and the checkpoint, not a finished run, is on disk.
    """

    model: keras.Model
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    wall_time_s: float
    loaded_from_cache: bool
    directory: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    finished: bool = True


def resolve_loss(loss: str | keras.losses.Loss, num_classes: int) -> tuple[Any, str, str]:
    """The Keras loss, the name of the accuracy metric and the label kind for ``loss``.

    ``"crossentropy"`` (true labels) gives sparse cross-entropy on logits and
    ``"accuracy"``; a complementary loss name (``helpers.complementary.LOSS_NAMES``) gives
    that loss and ``"pseudo_accuracy"``; a ``keras.losses.Loss`` instance is used as it is,
    with ``"accuracy"`` against the labels given.
    """
    if isinstance(loss, keras.losses.Loss):
        return loss, "accuracy", "given"
    if loss == "crossentropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True), "accuracy", "true"
    from helpers import complementary  # imported lazily: only complementary runs need it

    try:
        return complementary.get_loss(loss, num_classes), "pseudo_accuracy", "complementary"
    except ValueError as err:
        raise ValueError(f"{err} Or 'crossentropy' for ordinary labels.") from None


def _metrics(name: str) -> list[Any]:
    """The run's accuracy metric; complementary runs also record the ``stuck`` fraction."""
    if name == "pseudo_accuracy":
        from helpers.complementary import PseudoAccuracy, StuckFraction

        return [PseudoAccuracy(), StuckFraction()]
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


class EpochLine(keras.callbacks.Callback):  # type: ignore[misc]
    """Prints one line per epoch (Keras itself runs with ``verbose=0``: no per-step bars)."""

    def __init__(self, max_epochs: int, best: float = math.inf) -> None:
        super().__init__()
        self.max_epochs = max_epochs
        self.best = best

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        parts = [f"epoch {epoch + 1:>3}/{self.max_epochs}"]
        parts += [f"{key} {float(value):.4f}" for key, value in logs.items()]
        val_loss = float(logs.get("val_loss", math.inf))
        mark = " *" if val_loss < self.best else ""  # * = best validation loss so far
        self.best = min(self.best, val_loss)
        print("  ".join(parts) + f"  {time.perf_counter() - self.start:.1f}s{mark}", flush=True)


EXTRA_OUTPUT_SHARE = "extra_output_share"  # the history key of ExtraOutputShare


def extra_output_share(probs: np.ndarray, num_classes: int) -> float:
    """The share of rows of ``probs`` whose argmax is an output beyond the first ``num_classes``."""
    probs = np.asarray(probs)
    if not len(probs):
        return float("nan")
    return float((probs.argmax(axis=-1) >= num_classes).mean())


class ExtraOutputShare(keras.callbacks.Callback):  # type: ignore[misc]
    """Adds ``extra_output_share`` to the logs: how often an output no class names wins.

    For a head with outputs beyond the classes (``Profile.extra_outputs``): after every
    epoch, the share of a fixed subset of ``x`` (at most ``images``, drawn once) on which
    the argmax is an extra output, with the model in inference mode as it predicts (after
    the epoch's validation pass, so with the BatchNorm statistics validation used). One
    forward pass over the subset per epoch; no weight depends on it.
    """

    def __init__(
        self,
        model: keras.Model,
        x: np.ndarray,
        num_classes: int,
        batch_size: int,
        images: int = MONITOR_IMAGES,
    ) -> None:
        super().__init__()
        order = np.sort(np.random.default_rng(0).permutation(len(x))[:images])
        self.softmax_model, self.x = model, x[order]
        self.num_classes, self.batch_size = num_classes, batch_size

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            probs = predict_eagerly(self.softmax_model, self.x, self.batch_size)
            logs[EXTRA_OUTPUT_SHARE] = extra_output_share(probs, self.num_classes)


def compile_for_training(
    model: keras.Model, loss: Any, metric: str, profile: Profile
) -> keras.Model:
    """The compiled ``logits`` sub-model of ``model`` that ``train_model`` fits.

    Adam with the profile's learning rate and ``amsgrad`` (as the original study), decayed
    per step as Keras 2's ``decay`` did when ``profile.lr_decay > 0`` (:func:`learning_rate`);
    ``loss`` and ``metric`` as returned by :func:`resolve_loss`. Fitting it trains ``model``.
    The optimizer comes built (its variables exist before the first step).
    """
    trainer = logits_model(model)
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate(profile), amsgrad=profile.amsgrad)
    trainer.compile(optimizer=optimizer, loss=loss, metrics=_metrics(metric))
    # Adam's moments created inside the first traced step make TensorFlow trace the whole
    # training step twice: built here, one trace is enough (about 14 s less per smoke run).
    optimizer.build(trainer.trainable_variables)
    return trainer


def learning_rate(profile: Profile) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimizer's learning rate: constant, or Keras 2's ``decay`` when ``lr_decay > 0``.

    Keras 2 optimizers took ``decay`` and used ``lr / (1 + decay * t)`` at step ``t``
    (``t`` = the optimizer's ``iterations``, 0 at the first step); Keras 3's
    ``InverseTimeDecay`` with ``decay_steps=1`` is that formula. The schedule reads the
    optimizer's step count, which checkpoints keep, so a resumed run goes on decaying from
    where it stopped.

    Raises
    ------
    ValueError
        For a negative ``lr_decay``.
    """
    if profile.lr_decay < 0:
        raise ValueError(f"lr_decay must be 0 or positive, not {profile.lr_decay}.")
    if profile.lr_decay == 0:
        return profile.learning_rate
    return keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=profile.learning_rate, decay_steps=1, decay_rate=profile.lr_decay
    )


def cap_training_set(
    x: np.ndarray, y: np.ndarray, max_images: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_images`` of ``(x, y)``, every class kept in proportion (seeded)."""
    if max_images is None or len(x) <= max_images:
        return x, y
    _, keep = stratified_split(y, max_images / len(x), seed)
    return x[keep], y[keep]


def _check_inputs(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> None:
    for what, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(
                f"x_{what} must be uint8 RGB images (N, H, W, 3) as load_dataset returns, got "
                f"{x.dtype} {x.shape}; do not preprocess them (the pipeline does)."
            )
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"x_{what} has {len(x)} images and y_{what} {len(y)} labels.")
    if x_train.shape[1:] != x_val.shape[1:]:
        raise ValueError(f"Image sizes differ: {x_train.shape[1:]} vs {x_val.shape[1:]}.")


def fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of arrays' shapes and bytes (tells a cached run's data apart)."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def run_directory(name: str, profile: Profile, seed: int, precision: str | None = None) -> Path:
    """Where :func:`train_model` keeps run ``name`` of ``profile`` and ``seed``.

    ``<artifacts>/<profile>/<backend>-<precision>/<name>[-<overrides>]-seed<seed>``, where
    ``<overrides>`` is :func:`helpers.profiles.override_tag` of the fields that change
    training; ``precision`` as in :func:`train_model`.
    """
    policy = resolve_precision(precision).policy
    tag = override_tag(profile, TRAINING_FIELDS)
    return artifacts.run_dir(f"{name}-{tag}" if tag else name, profile.name, seed, precision=policy)


def train_model(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    profile: Profile,
    loss: str | keras.losses.Loss = "crossentropy",
    seed: int = 0,
    num_classes: int = 3,
    retrain: bool = False,
    verbose: bool = True,
    bn_momentum: float = 0.99,
    recalibrate_bn: bool | None = None,
    monitor_batch_stats: bool = True,
    precision: str | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    deadline: float | None = None,
    extra_output_images: np.ndarray | None = None,
) -> TrainedModel:
    """Train Xception on uint8 images (or load the finished run saved earlier).

    With ``profile.checkpoint`` the training state is saved after every epoch, and a run
    that was interrupted continues from its last finished epoch (``helpers.checkpoint``)
    with the same result as an uninterrupted run. Two processes that ask for the same run
    train it once: the second waits for the first and loads its result
    (``helpers.artifacts.exclusive``).

    Parameters
    ----------
    name
        Run name, e.g. ``"regular"``; artifacts go to
        ``artifacts_dir()/<profile>/<backend>-<precision>/<name>[-<overrides>]-seed<seed>/``,
        where ``<overrides>`` is :func:`helpers.profiles.override_tag` of the fields that
        change training.
    x_train, y_train, x_val, y_val
        uint8 images ``(N, H, W, 3)`` and int labels: true labels for ``"crossentropy"``,
        complementary labels for a complementary loss. Validation drives early stopping.
    profile
        Batch size, learning rate (Adam, ``amsgrad`` per profile, decayed per step when
        ``lr_decay > 0``), max epochs, patience, the training-image cap
        (``max_train_images``, stratified and seeded), the BatchNorm handling
        (``recalibrate_bn``) and how many of the ``num_classes`` outputs name no class
        (``extra_outputs``: the last ones).
    loss
        ``"crossentropy"``, a name from ``helpers.complementary.LOSS_NAMES``, or a
        ``keras.losses.Loss`` taking logits.
    seed
        Seeds weights, shuffling, augmentation and the image cap.
    num_classes
        Number of classes (logits).
    retrain
        Train even when a finished run exists (it is replaced atomically at the end).
    verbose
        Print one line per epoch.
    bn_momentum
        Momentum of the BatchNorm moving averages (Keras' default).
    recalibrate_bn
        Replace the moving statistics by exact ones before each validation pass
        (``helpers.batchnorm.recalibrate_batchnorm``). ``False`` reproduces plain Keras,
        and with it the batch-norm trap. ``None``: the profile's ``recalibrate_bn``.
    monitor_batch_stats
        Record ``val_<metric>_batch_stats`` per epoch (costs one forward pass over up to
        ``profile.monitor_images`` validation images per epoch).
    precision
        ``"auto"``, ``"float32"`` or ``"mixed_bfloat16"`` (``None``: ``$BOOK_PRECISION``,
        else ``auto``; see ``helpers.precision``). Part of the run's identity.
    callbacks
        Extra Keras callbacks, called after the book's own (which checkpoint first).
    deadline
        A ``time.time()`` by which this call should return: training stops after the last
        epoch that ends before it (``helpers.checkpoint.StopAtDeadline``) and, unless the run
        was done anyway, returns it *unfinished* (``finished=False``): nothing is saved as
        finished, and the same call later resumes from the checkpoint. Needs
        ``profile.checkpoint``.
    extra_output_images
        uint8 images on which, with ``profile.extra_outputs > 0``, the history records
        ``extra_output_share`` per epoch (:class:`ExtraOutputShare`, up to
        ``profile.monitor_images`` of them; ``None``: ``x_val``). Ignored without extra
        outputs, so other runs' histories do not change.

    Returns
    -------
    TrainedModel
        The softmax model with the best epoch's weights, and its training record.

    Raises
    ------
    ValueError
        For images that are not uint8 ``(N, H, W, 3)``, mismatched lengths, an unknown loss,
        or a saved run of this name that was trained on other data or settings.
    """
    _check_inputs(x_train, y_train, x_val, y_val)
    recalibrate = profile.recalibrate_bn if recalibrate_bn is None else recalibrate_bn
    if not 0 <= profile.extra_outputs < num_classes:
        raise ValueError(
            f"extra_outputs must lie in 0..{num_classes - 1} of the {num_classes} outputs, "
            f"not {profile.extra_outputs}."
        )
    if deadline is not None and not profile.checkpoint:
        raise ValueError(
            f"a deadline needs checkpoints, or the unfinished epochs are lost: the "
            f"{profile.name!r} profile does not checkpoint (override checkpoint=True)"
        )
    policy = resolve_precision(precision).policy
    directory = run_directory(name, profile, seed, policy)
    # One process at a time per run: a second one waits, then loads what the first saved.
    with artifacts.exclusive(directory, note=print if verbose else None):
        x_train, y_train = cap_training_set(x_train, y_train, profile.max_train_images, seed)
        loss_fn, metric, labels = resolve_loss(loss, num_classes)
        steps = math.ceil(len(x_train) / profile.batch_size)
        request = {
            "name": name,
            "profile": _training_fields(profile.as_dict()),
            "backend": keras.backend.backend(),
            "precision": policy,
            "seed": seed,
            "loss": loss if isinstance(loss, str) else type(loss).__name__,
            "labels": labels,
            "num_classes": num_classes,
            "input_shape": list(x_train.shape[1:]),
            "bn_momentum": float(bn_momentum),
            "recalibrate_bn": recalibrate,
            "data": fingerprint(x_train, y_train, x_val, y_val),
        }
        if not retrain and artifacts.is_complete(directory):
            return _load(directory, request, verbose)
        if retrain:
            checkpoint.discard(directory)
        resumed = checkpoint.load_checkpoint(directory, request) if profile.checkpoint else None

        keras.utils.set_random_seed(seed)
        model = build_xception(
            x_train.shape[1:],
            num_classes,
            bn_momentum=bn_momentum,
            seed=seed,
            precision=policy,
            middle_blocks=profile.middle_blocks,
        )
        trainer = compile_for_training(model, loss_fn, metric, profile)
        best_weights = resumed.restore(trainer) if resumed else None
        stopper = checkpoint.ResumableEarlyStopping(
            monitor="val_loss",
            patience=profile.patience,
            restore_best_weights=True,
            resume=resumed.early_stopping if resumed else None,
            best_weights=best_weights,
        )
        recorder = checkpoint.EpochRecorder(
            request, stopper, directory if profile.checkpoint else None, resumed
        )
        own: list[Any] = []
        if recalibrate:
            own.append(RecalibrateBatchNorm(model, x_train, seed=seed))
        if monitor_batch_stats:
            own.append(
                BatchStatsMonitor(
                    model, x_val, y_val, metric, profile.batch_size, profile.monitor_images
                )
            )
        if profile.extra_outputs > 0:
            own.append(
                ExtraOutputShare(
                    model,
                    x_val if extra_output_images is None else extra_output_images,
                    num_classes - profile.extra_outputs,
                    profile.batch_size,
                    profile.monitor_images,
                )
            )
        own += [keras.callbacks.TerminateOnNaN(), stopper, recorder]
        done = resumed.epochs_done if resumed else 0
        if verbose:
            best_so_far = min(recorder.history.get("val_loss", [math.inf]), default=math.inf)
            own.append(EpochLine(profile.max_epochs, best_so_far))
            bn = "recalibrated every epoch" if recalibrate else f"moving averages ({bn_momentum})"
            print(
                f"training {name} (seed {seed}, {keras.backend.backend()}, {policy}): "
                f"{len(x_train)} images, {steps} steps/epoch, BatchNorm statistics {bn}",
                flush=True,
            )
            if resumed:
                print(f"resuming after epoch {done} from {resumed.directory.name}", flush=True)
        timer = (
            None if deadline is None else checkpoint.StopAtDeadline(deadline, profile.max_epochs)
        )
        own += [timer] if timer else []
        batches = AugmentedBatches(x_train, y_train, profile.batch_size, seed=seed)
        batches.epoch = done  # each epoch's batches depend on (seed, epoch): same as uninterrupted
        if resumed and (resumed.stop or done >= profile.max_epochs):
            if best_weights is not None:  # what EarlyStopping does at the end of training
                trainer.set_weights(best_weights)
        else:
            trainer.fit(
                batches,
                validation_data=(preprocess(x_val), np.asarray(y_val)),
                validation_batch_size=profile.batch_size,
                epochs=profile.max_epochs,
                initial_epoch=done,
                callbacks=[*own, *callbacks],
                verbose=0,
            )
        wall = recorder.wall_time_s()
        history = recorder.history
        epochs_run = len(history["loss"])
        best = _best_epoch(history)
        meta = {**request, "epochs_run": epochs_run, "best_epoch": best, "wall_time_s": wall}
        meta.update(train_images=len(x_train), val_images=len(x_val), keras=keras.__version__)
        meta.update(resumed_after_epoch=done if resumed else None)
        if timer is not None and timer.reached:
            if stopper.best_weights is not None:  # the best epoch so far, as a finished run has
                trainer.set_weights(stopper.best_weights)
            if verbose:
                print(
                    f"stopped at the deadline after epoch {epochs_run} of at most "
                    f"{profile.max_epochs} (best so far: {best}); unfinished, the same call resumes it",
                    flush=True,
                )
            meta["finished"] = False
            return TrainedModel(
                model, history, epochs_run, best, wall, False, directory, meta, False
            )
        artifacts.save_run(directory, model, history, meta)
        checkpoint.discard(directory)
        if verbose:
            print(
                f"best epoch {best} of {epochs_run}; {wall:.0f}s; saved as {_shown(directory)}",
                flush=True,
            )
        return TrainedModel(model, history, epochs_run, best, wall, False, directory, meta)


def _best_epoch(history: dict[str, list[float]]) -> int:
    """1-based epoch of the lowest finite validation loss (the last epoch if none is finite)."""
    val = np.asarray(history.get("val_loss", []), dtype=float)
    if not np.isfinite(val).any():
        return len(history["loss"])
    return int(np.nanargmin(np.where(np.isfinite(val), val, np.nan))) + 1


def _load(directory: Path, request: dict[str, Any], verbose: bool) -> TrainedModel:
    weights, history, meta = artifacts.load_run(directory)
    saved = {"precision": "float32", **meta, "profile": _training_fields(meta.get("profile", {}))}
    changed = [k for k, v in request.items() if saved.get(k) != v]
    if changed:
        raise ValueError(
            f"The saved run {_shown(directory)} was trained with other {', '.join(changed)}. "
            "Pass retrain=True to replace it, or choose another run name."
        )
    model = build_xception(
        tuple(meta["input_shape"]),
        meta["num_classes"],
        bn_momentum=meta["bn_momentum"],
        precision=saved["precision"],
        middle_blocks=saved["profile"].get("middle_blocks", LATER_DEFAULTS["middle_blocks"]),
    )
    model.load_weights(str(weights))
    if verbose:
        print(
            f"loaded {meta['name']} (seed {meta['seed']}) from {_shown(directory)}: best epoch "
            f"{meta['best_epoch']} of {meta['epochs_run']}, trained in {meta['wall_time_s']:.0f}s",
            flush=True,
        )
    return TrainedModel(
        model,
        history,
        int(meta["epochs_run"]),
        int(meta["best_epoch"]),
        float(meta["wall_time_s"]),
        True,
        directory,
        meta,
    )


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``(N, K)`` for uint8 images (preprocessed batch by batch)."""
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    batches = AugmentedBatches(x, None, batch_size, augment=False, shuffle=False)
    return np.asarray(model.predict(batches, verbose=0))


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 32) -> float:
    """Accuracy of ``model`` on uint8 images ``x`` with true labels ``y`` (inference mode)."""
    return score("accuracy", predict_proba(model, x, batch_size), y)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``(K, K)``: row = true class, column = predicted class.

    ``y_pred`` may be labels ``(N,)`` or scores ``(N, K)`` (argmax taken).
    """
    true = np.asarray(y_true).reshape(-1).astype(np.int64)
    pred = np.asarray(y_pred)
    pred = (np.argmax(pred, axis=-1) if pred.ndim == 2 else pred.reshape(-1)).astype(np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} true labels but {pred.size} predictions.")
    if true.size and (
        min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= num_classes
    ):
        raise ValueError(f"Labels must lie in 0..{num_classes - 1}.")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall of each class: the confusion matrix's diagonal over its row sums (NaN if empty)."""
    counts = confusion_matrix(y_true, y_pred, num_classes)
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(counts) / totals, np.nan)
