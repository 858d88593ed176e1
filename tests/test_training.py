"""Tests for the training pipeline: augmentation, batch-norm fix, training, metrics.

A run on disk (its cache, lock, checkpoints and deadline) is tested in ``test_training_runs.py``.
"""

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from typing import Any

import keras
import numpy as np
import pytest

from helpers import artifacts, training
from helpers.augment import (
    AugmentedBatches,
    affine_vector,
    augment_images,
    random_transforms,
    warp_images,
)
from helpers.batchnorm import (
    MONITOR_IMAGES,
    BatchStatsMonitor,
    batch_stats_accuracy,
    recalibrate_batchnorm,
)
from helpers.data import preprocess
from helpers.profiles import PROFILES, Profile
from helpers.training import (
    cap_training_set,
    compile_for_training,
    confusion_matrix,
    evaluate,
    per_class_accuracy,
    predict_proba,
    resolve_loss,
    train_model,
)
from helpers.xception import build_xception

SIZE = 71
TINY = Profile(
    name="unit",
    image_size=SIZE,
    batch_size=8,
    learning_rate=1e-3,
    max_epochs=1,
    patience=1,
    seeds=(0,),
    middle_blocks=0,  # the machinery under test does not depend on depth; shallower is faster
)


def shallow_xception(**kwargs: Any) -> keras.Model:
    """The Xception that ``TINY`` trains: no middle-flow blocks."""
    return build_xception((SIZE, SIZE, 3), 3, middle_blocks=TINY.middle_blocks, **kwargs)


def colour_images(n: int, seed: int = 0, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A separable 3-class problem: class k has a brighter channel k, on noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.integers(0, 140, (n, size, size, 3))
    x[np.arange(n), :, :, y] += 100
    return x.astype(np.uint8), y.astype(np.int64)


@pytest.fixture(autouse=True)
def scratch_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.ARTIFACTS_ENV, str(tmp_path / "artifacts"))


# --------------------------------------------------------------------------- augmentation


def test_augmentation_keeps_shape_dtype_and_range():
    x, _ = colour_images(6)
    out = augment_images(x, seed=3)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= x.min() - 1e-3 and out.max() <= x.max() + 1e-3
    assert not np.allclose(out, x)


def test_augmentation_is_deterministic_in_the_seed():
    x, _ = colour_images(4)
    np.testing.assert_array_equal(augment_images(x, 7), augment_images(x, 7))
    assert not np.allclose(augment_images(x, 7), augment_images(x, 8))


def _warp(x, vector):
    return warp_images(x, np.stack([vector] * len(x)))


def test_warp_geometry_flips_rotation_and_shift_are_exact():
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(_warp(x, affine_vector(0, 0, 0, True, False, 8, 8)), x[:, :, ::-1])
    np.testing.assert_allclose(_warp(x, affine_vector(0, 0, 0, False, True, 8, 8)), x[:, ::-1])
    quarter = _warp(x, affine_vector(np.pi / 2, 0, 0, False, False, 8, 8))
    np.testing.assert_allclose(quarter, np.rot90(x, 1, axes=(1, 2)), atol=1e-3)
    shifted = _warp(x, affine_vector(0, 2, 0, False, False, 8, 8))  # 2 px, edges repeated
    np.testing.assert_allclose(shifted[:, :, :6], x[:, :, 2:])
    np.testing.assert_allclose(shifted[:, :, 6:], np.repeat(x[:, :, 7:], 2, axis=2))


def test_random_transforms_follow_the_original_ranges():
    vectors = random_transforms(np.random.default_rng(0), 4000, 100, 100)
    angles = np.degrees(np.arctan2(np.abs(vectors[:, 3]), np.abs(vectors[:, 0])))
    assert angles.max() <= 90.0 + 1e-3 and angles.max() > 89.0
    flips_x = np.mean(np.sign(vectors[:, 0] * vectors[:, 4] - vectors[:, 1] * vectors[:, 3]) < 0)
    assert 0.45 < flips_x < 0.55  # one flip (not both) reverses orientation half the time
    # an image's centre lands within 10 % of the size (plus rotation of the centre: none)
    centre = vectors[:, [0, 1]] @ [49.5, 49.5] + vectors[:, 2]
    assert np.all(np.abs(centre - 49.5) <= 10.0 + 1e-3)


def test_batches_are_preprocessed_seeded_and_reshuffled_each_epoch():
    x, y = colour_images(20)
    batches = AugmentedBatches(x, y, 8, seed=1, workers=1)
    assert len(batches) == 3
    xb, yb = batches[0]
    assert xb.shape == (8, SIZE, SIZE, 3) and xb.dtype == np.float32
    assert -1.0 <= xb.min() and xb.max() <= 1.0
    np.testing.assert_array_equal(batches[0][0], xb)  # same epoch, same batch
    assert batches[2][0].shape[0] == 4
    assert sorted(np.concatenate([batches[i][1] for i in range(3)])) == sorted(y)
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][1], yb) or not np.allclose(batches[0][0], xb)
    plain = AugmentedBatches(x, None, 8, augment=False, shuffle=False, workers=1)
    np.testing.assert_array_equal(plain[1][0], preprocess(x[8:16]))
    with pytest.raises(IndexError):
        plain[3]


def test_pipeline_runs_on_jax_without_tensorflow(tmp_path):
    """Blocks `import tensorflow` and runs the augmentation and a prediction on JAX."""
    pytest.importorskip("jax")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["tensorflow"] = None  # any import of tensorflow now fails
        import numpy as np
        import keras
        from helpers.augment import AugmentedBatches, augment_images
        from helpers import training
        assert keras.backend.backend() == "jax"
        x = np.random.default_rng(0).integers(0, 256, (3, 71, 71, 3)).astype(np.uint8)
        out = augment_images(x, 0)
        assert out.shape == x.shape and out.dtype == np.float32
        xb, yb = AugmentedBatches(x, np.arange(3), 2, workers=1)[0]
        assert xb.shape == (2, 71, 71, 3)
        print("ok", "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok False")


# --------------------------------------------------------------------------- batch norm


def test_recalibration_sets_exact_population_statistics():
    model = shallow_xception(seed=0)
    x, _ = colour_images(12)
    trainable_before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    recalibrate_batchnorm(model, x, batch_size=5)  # uneven batches: 5 + 5 + 2
    conv = keras.Model(model.input, model.get_layer("block1_conv1").output)
    features = keras.ops.convert_to_numpy(conv(preprocess(x))).astype(np.float64)
    bn = model.get_layer("block1_conv1_bn")  # the first BN: its input needs no other BN
    mean = keras.ops.convert_to_numpy(bn.moving_mean)
    var = keras.ops.convert_to_numpy(bn.moving_variance)
    np.testing.assert_allclose(mean, features.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(var, features.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-6)
    assert bn.momentum == 0.99
    for before, v in zip(trainable_before, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(v))


def _trained(x, y, epochs):
    keras.utils.set_random_seed(0)
    model = shallow_xception(seed=0)  # Keras' default momentum 0.99
    loss, metric, _ = resolve_loss("crossentropy", 3)
    trainer = compile_for_training(model, loss, metric, TINY)
    fit = trainer.fit(preprocess(x), y, batch_size=TINY.batch_size, epochs=epochs, verbose=0)
    return model, fit.history["loss"]


def test_the_trainer_comes_with_its_optimizer_built():
    """Adam's moments exist before the first step (so TensorFlow traces the step once)."""
    model = shallow_xception(seed=0)
    loss, metric, _ = resolve_loss("crossentropy", 3)
    trainer = compile_for_training(model, loss, metric, TINY)
    assert trainer.optimizer.built
    weights = len(trainer.trainable_variables)
    # iterations and learning rate, then momentum, velocity and AMSGrad's maximum per weight
    assert len(trainer.optimizer.variables) == 2 + 3 * weights


def test_training_steps_reduce_the_loss_and_recalibration_escapes_the_bn_trap():
    """18 steps from scratch on batches of 8 reduce the loss and the network learns
    (accuracy with batch statistics), but the moving averages (momentum 0.99) still hold
    mostly their initial values, so inference mode is at chance: the trap. Recalibrating
    the statistics on the training images fixes inference."""
    x, y = colour_images(48, seed=0)
    x_val, y_val = colour_images(30, seed=1)
    model, losses = _trained(x, y, epochs=3)
    assert losses[-1] < losses[0]
    trapped = batch_stats_accuracy(model, x_val, y_val)
    recalibrate_batchnorm(model, x[np.random.default_rng(0).permutation(len(x))])
    fixed = batch_stats_accuracy(model, x_val, y_val)
    evidence = {"moving averages": trapped, "recalibrated": fixed}
    assert trapped["batch_stats"] >= 0.9, evidence  # the network has learnt ...
    assert trapped["inference"] <= 0.5, evidence  # ... but inference is near chance (1/3)
    assert fixed["inference"] >= 0.9, evidence


# --------------------------------------------------------------------------- training


def test_resolve_loss_names():
    loss, metric, labels = resolve_loss("crossentropy", 3)
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy) and metric == "accuracy"
    assert loss.get_config().get("from_logits") is True
    _, metric, labels = resolve_loss("scl_nl", 3)
    assert (metric, labels) == ("pseudo_accuracy", "complementary")
    with pytest.raises(ValueError, match="crossentropy"):
        resolve_loss("nonsense", 3)


def test_cap_training_set_is_stratified_and_seeded():
    x = np.zeros((90, 2, 2, 3), np.uint8)
    y = np.repeat([0, 1, 2], [30, 45, 15])
    xs, ys = cap_training_set(x, y, 30, seed=0)
    assert len(xs) == 30 and np.bincount(ys).tolist() == [10, 15, 5]
    assert cap_training_set(x, y, None, 0)[0] is x


def test_train_model_with_a_complementary_loss():
    from helpers.complementary import complementary_labels

    x, y = colour_images(16)
    x_val, y_val = colour_images(8, seed=1)
    ybar = complementary_labels(y, 3, seed=0)
    ybar_val = complementary_labels(y_val, 3, seed=1)
    run = train_model("comp", x, ybar, x_val, ybar_val, profile=TINY, loss="scl_nl", verbose=False)
    assert {
        "pseudo_accuracy",
        "val_pseudo_accuracy",
        "val_pseudo_accuracy_batch_stats",
        "stuck",
        "val_stuck",
    } <= set(run.history)
    assert all(0.0 <= v <= 1.0 for v in run.history["stuck"] + run.history["val_stuck"])
    assert run.meta["loss"] == "scl_nl" and run.meta["labels"] == "complementary"
    assert run.meta["recalibrate_bn"] is True
    assert "extra_output_share" not in run.history  # only heads with extra outputs record it


class _LearningRates(keras.callbacks.Callback):
    """Records the optimizer's learning rate after every training step."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_the_original_recipe_decays_the_rate_keeps_keras_batchnorm_and_records_the_extra_output(
    monkeypatch,
):
    """A 4-output head with Keras' moving averages and Keras 2's decay: the rate falls as
    lr / (1 + decay * step), no recalibration runs, and the history holds per epoch the share
    of the given images on which the extra output wins."""
    from helpers.batchnorm import predict_proba as predict_inference
    from helpers.complementary import complementary_labels

    def no_recalibration(*args, **kwargs):
        raise AssertionError("recalibrate_bn=False must train without RecalibrateBatchNorm")

    monkeypatch.setattr(training, "RecalibrateBatchNorm", no_recalibration)
    recipe = replace(TINY, extra_outputs=1, recalibrate_bn=False, lr_decay=0.25, monitor_images=64)
    x, y = colour_images(16)  # two steps of 8
    x_val, y_val = colour_images(8, seed=1)
    x_test, _ = colour_images(6, seed=2)
    rates = _LearningRates()
    run = train_model(
        "recipe", x, complementary_labels(y, 3, seed=0), x_val,
        complementary_labels(y_val, 3, seed=1), profile=recipe, loss="article", num_classes=4,
        verbose=False, callbacks=[rates], extra_output_images=x_test,
    )  # fmt: skip
    lr = TINY.learning_rate
    np.testing.assert_allclose(rates.rates, [lr / (1 + 0.25 * 1), lr / (1 + 0.25 * 2)], rtol=1e-5)
    assert run.meta["recalibrate_bn"] is False
    assert run.meta["profile"]["lr_decay"] == 0.25
    assert run.meta["profile"]["recalibrate_bn"] is False
    assert run.model.output_shape[-1] == 4
    (share,) = run.history["extra_output_share"]  # one epoch, one value
    # The monitor scores the given images with the model as it predicts (inference mode).
    expected = np.mean(predict_inference(run.model, x_test).argmax(axis=1) == 3)
    assert share == pytest.approx(expected)


def test_the_learning_rate_is_constant_without_decay_and_resumes_its_decay():
    from helpers.checkpoint import WEIGHTS, Checkpoint

    assert training.learning_rate(TINY) == TINY.learning_rate
    with pytest.raises(ValueError, match="lr_decay must be 0 or positive"):
        training.learning_rate(replace(TINY, lr_decay=-1.0))
    decaying = replace(TINY, lr_decay=0.5)
    loss, metric, _ = resolve_loss("crossentropy", 3)
    trainer = compile_for_training(shallow_xception(seed=0), loss, metric,
                                   decaying)  # fmt: skip
    trainer.optimizer.iterations.assign(10)  # as after ten steps
    saved = artifacts.artifacts_dir() / "ckpt"
    saved.mkdir(parents=True)
    trainer.save_weights(str(saved / WEIGHTS))  # what a checkpoint saves

    fresh = compile_for_training(shallow_xception(seed=1), loss, metric,
                                 decaying)  # fmt: skip
    assert float(keras.ops.convert_to_numpy(fresh.optimizer.learning_rate)) == pytest.approx(
        TINY.learning_rate
    )
    Checkpoint(saved, 1, {}, 0.0, {}, False).restore(fresh)
    assert int(keras.ops.convert_to_numpy(fresh.optimizer.iterations)) == 10
    rate = float(keras.ops.convert_to_numpy(fresh.optimizer.learning_rate))
    assert rate == pytest.approx(TINY.learning_rate / (1 + 0.5 * 10))


def test_rejects_preprocessed_or_mismatched_inputs():
    x, y = colour_images(8)
    with pytest.raises(ValueError, match="uint8"):
        train_model("bad", preprocess(x), y, x, y, profile=TINY)
    with pytest.raises(ValueError, match="labels"):
        train_model("bad", x, y[:5], x, y, profile=TINY)
    with pytest.raises(ValueError, match="plain"):
        artifacts.run_dir("../escape", "unit", 0)


# --------------------------------------------------------------------------- evaluation


def test_predict_proba_and_evaluate_on_uint8_images():
    model = shallow_xception(seed=0)
    x, y = colour_images(5)
    probs = predict_proba(model, x, batch_size=2)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert evaluate(model, x, y, batch_size=2) == pytest.approx(np.mean(probs.argmax(axis=1) == y))


def test_confusion_matrix_and_per_class_accuracy():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    np.testing.assert_allclose(per_class_accuracy(y_true, y_pred, 3), [0.5, 2 / 3, 0.0])
    scores = np.eye(3)[y_pred]
    assert confusion_matrix(y_true, scores, 3).tolist() == cm.tolist()
    assert np.isnan(per_class_accuracy(np.array([0]), np.array([0]), 2)[1])
    with pytest.raises(ValueError):
        confusion_matrix(y_true, y_pred[:3], 3)
    with pytest.raises(ValueError):
        confusion_matrix(y_true, y_pred + 2, 3)


def test_the_batch_stats_monitor_scores_as_many_images_as_the_profile_says(monkeypatch):
    seen = []

    class Spy(BatchStatsMonitor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(len(self.x))

    monkeypatch.setattr(training, "BatchStatsMonitor", Spy)
    x, y = colour_images(16)
    x_val, y_val = colour_images(8, seed=1)
    run = train_model("monitor", x, y, x_val, y_val, profile=replace(TINY, monitor_images=3),
                      verbose=False)  # fmt: skip
    assert seen == [3] and len(run.history["val_accuracy_batch_stats"]) == 1
    # smoke scores fewer (the monitor runs eagerly); the real profiles keep the default
    assert PROFILES["smoke"].monitor_images < PROFILES["laptop"].monitor_images == MONITOR_IMAGES
