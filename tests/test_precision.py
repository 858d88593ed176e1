"""What stays float32 in a mixed-bfloat16 model: head, losses, BatchNorm, Grad-CAM, weights."""

import keras
import numpy as np
import pytest

from helpers.complementary import LOSS_NAMES, get_loss
from helpers.gradcam import compute_gradients, grad_cam
from helpers.precision import float32_model, model_policy
from helpers.xception import build_xception

SIZE = 71


@pytest.fixture(scope="module")
def pair():
    """The same seeded weights in both precisions."""
    fp32 = build_xception((SIZE, SIZE, 3), 3, seed=0)
    bf16 = build_xception((SIZE, SIZE, 3), 3, seed=0, precision="mixed_bfloat16")
    bf16.set_weights(fp32.get_weights())
    return fp32, bf16


def images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")


def test_the_body_computes_in_bfloat16_and_the_head_and_variables_in_float32(pair):
    _, bf16 = pair
    assert model_policy(bf16) == "mixed_bfloat16"
    assert bf16.get_layer("block5_sepconv1").compute_dtype == "bfloat16"
    assert bf16.get_layer("block5_sepconv1_bn").compute_dtype == "bfloat16"
    for name in ("logits", "predictions"):
        assert bf16.get_layer(name).compute_dtype == "float32"
    assert {v.dtype for v in bf16.variables} == {"float32"}  # BatchNorm statistics included
    assert keras.backend.standardize_dtype(bf16(images()).dtype) == "float32"
    with pytest.raises(ValueError, match="precision must be"):
        build_xception((SIZE, SIZE, 3), 3, precision="float16")


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_complementary_losses_are_float32_and_stable_on_bfloat16_logits(name):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 8, (64, 3)).astype("float32")
    logits[:4] = [[60, -60, 0], [-60, 60, 0], [0, 0, 60], [-80, 80, 80]]  # saturated softmax
    rounded = keras.ops.cast(keras.ops.cast(logits, "bfloat16"), "float32")  # a bf16 body's
    ybar = rng.integers(0, 3, 64)
    loss = get_loss(name, 3)
    value = loss(ybar, rounded)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    assert np.isfinite(float(value))
    reference = float(loss(ybar, logits))
    assert float(value) == pytest.approx(reference, rel=0.05, abs=0.05)


def test_grad_cam_of_a_bfloat16_model_is_computed_in_float32(pair):
    fp32, bf16 = pair
    x = images()
    twin = float32_model(bf16)
    assert twin is not bf16 and model_policy(twin) == "float32"
    assert float32_model(bf16) is twin  # built once
    assert float32_model(fp32) is fp32
    passed = compute_gradients(bf16, x, ["block2_add", "block14_sepconv2_act"])
    for layer in passed.activations:
        assert passed.activations[layer].dtype == np.float32
        assert passed.gradients[layer].dtype == np.float32
    maps_bf16 = grad_cam(bf16, x, ["block9_add"]).map("block9_add")
    maps_fp32 = grad_cam(fp32, x, ["block9_add"]).map("block9_add")
    np.testing.assert_allclose(maps_bf16, maps_fp32, rtol=1e-4, atol=1e-6)


def test_the_twin_follows_weights_that_change(pair):
    _, bf16 = pair
    model = build_xception((SIZE, SIZE, 3), 3, seed=1, precision="mixed_bfloat16")
    first = float32_model(model).get_layer("logits").get_weights()[0].copy()
    kernel = model.get_layer("logits").kernel
    kernel.assign(kernel.value * 0 + 1)
    assert not np.allclose(float32_model(model).get_layer("logits").get_weights()[0], first)
    np.testing.assert_array_equal(float32_model(model).get_layer("logits").get_weights()[0], 1)


def test_saved_weights_load_in_either_precision(pair, tmp_path):
    fp32, bf16 = pair
    x = images()
    bf16.save_weights(str(tmp_path / "bf16.weights.h5"))
    into_fp32 = build_xception((SIZE, SIZE, 3), 3)
    into_fp32.load_weights(str(tmp_path / "bf16.weights.h5"))
    np.testing.assert_allclose(into_fp32(x), fp32(x), rtol=1e-5, atol=1e-6)
    fp32.save_weights(str(tmp_path / "fp32.weights.h5"))
    into_bf16 = build_xception((SIZE, SIZE, 3), 3, precision="mixed_bfloat16")
    into_bf16.load_weights(str(tmp_path / "fp32.weights.h5"))
    np.testing.assert_allclose(into_bf16(x), bf16(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(into_bf16(x), fp32(x), atol=0.05)  # bf16 rounding only


def test_batchnorm_recalibration_of_a_bfloat16_model_is_float32(pair):
    from helpers.batchnorm import recalibrate_batchnorm

    fp32, bf16 = pair
    x = np.random.default_rng(2).integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    recalibrate_batchnorm(fp32, x, batch_size=4)
    recalibrate_batchnorm(bf16, x, batch_size=4)
    for name in ("block1_conv1_bn", "block9_sepconv3_bn"):
        mean16 = bf16.get_layer(name).moving_mean
        assert keras.backend.standardize_dtype(mean16.dtype) == "float32"
        mean32 = np.asarray(fp32.get_layer(name).moving_mean)
        np.testing.assert_allclose(np.asarray(mean16), mean32, atol=0.05 * np.abs(mean32).max())
