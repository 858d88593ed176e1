"""Grad-CAM maths on tiny models with hand-set weights (fast; runs on TF and on JAX)."""

import json
import os
import subprocess
import sys
import textwrap

import cv2
import keras
import matplotlib
import numpy as np
import pytest

from helpers import gradcam as gc

W_HAND = np.array([[1.0, -2.0, 0.5], [0.5, 1.0, -1.0]], np.float32)  # (channels, classes)


def hand_model():
    """features = x (identity 1x1 conv) -> ReLU -> GAP -> Dense(W_HAND) -> softmax."""
    inp = keras.Input((4, 4, 2))
    feats = keras.layers.Conv2D(2, 1, name="features")(inp)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(
        keras.layers.Activation("relu", name="relu")(feats)
    )
    logits = keras.layers.Dense(3, name="logits")(pooled)
    model = keras.Model(inp, keras.layers.Activation("softmax", name="predictions")(logits))
    model.get_layer("features").set_weights(
        [np.eye(2, dtype="float32")[None, None], np.zeros(2, "float32")]
    )
    model.get_layer("logits").set_weights([W_HAND, np.array([0.1, 0.0, -0.1], "float32")])
    return model


def tiny_model(seed=0, size=8):
    """Two 3x3 convs with ReLU, GAP, Dense logits, softmax; weights from a fixed seed."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = keras.layers.Activation("relu", name="act1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.Activation("relu", name="act2")(x)
    logits = keras.layers.Dense(3, name="logits")(
        keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    )
    model = keras.Model(inp, keras.layers.Activation("softmax", name="predictions")(logits))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def images(n=5, size=8, seed=1, channels=3):
    return np.random.default_rng(seed).normal(size=(n, size, size, channels)).astype("float32")


def test_grad_cam_equals_hand_computation():
    model, x = hand_model(), images(3, 4, channels=2)
    result = gc.grad_cam(model, x, "features", methods=list(gc.METHODS), upsample_maps=False)
    logits = np.maximum(x, 0).mean(axis=(1, 2)) @ W_HAND + [0.1, 0.0, -0.1]
    c = logits.argmax(axis=1)
    np.testing.assert_array_equal(result.class_index, c)
    # d logit_c / d A_ijk = W[k, c] / 16 where A > 0 (ReLU), else 0
    g = (x > 0) * W_HAND[:, c].T[:, None, None, :] / 16
    expected = {
        "gradcam": np.einsum("nhwk,nk->nhw", x, g.mean(axis=(1, 2))),
        "hirescam": (x * g).sum(-1),
    }
    g2, g3 = g**2, g**3
    denominator = 2 * g2 + x.sum(axis=(1, 2), keepdims=True) * g3
    alpha = np.where(denominator != 0, g2 / np.where(denominator == 0, 1, denominator), 0)
    expected["gradcam++"] = np.einsum(
        "nhwk,nk->nhw", x, (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    )
    for method, maps in expected.items():
        np.testing.assert_allclose(
            result.map("features", method), np.maximum(maps, 0), rtol=1e-5, atol=1e-7
        )
    np.testing.assert_allclose(result.probabilities.sum(1), 1, rtol=1e-6)


def test_maps_are_upsampled_bilinearly_to_the_input_size():
    model, x = tiny_model(), images(2)
    result = gc.grad_cam(model, x, ["act1", "act2"])
    low = gc.grad_cam(model, x, ["act2"], upsample_maps=False).map("act2")
    assert result.map("act2").shape == (2, 8, 8) and low.shape == (2, 4, 4)
    assert result.map("act1").dtype == np.float32
    opencv = np.stack([cv2.resize(m, (8, 8), interpolation=cv2.INTER_LINEAR) for m in low])
    np.testing.assert_allclose(result.map("act2"), opencv, rtol=1e-5, atol=1e-6)


def test_batched_equals_one_at_a_time():
    model, x = tiny_model(), images(5)
    layers = ["act1", "conv2", "act2"]
    batched = gc.grad_cam(
        model, x, layers, methods=list(gc.METHODS), batch_size=2
    )  # padded last batch
    for i in range(len(x)):
        single = gc.grad_cam(model, x[i : i + 1], layers, methods=list(gc.METHODS))
        for method in gc.METHODS:
            for layer in layers:
                np.testing.assert_allclose(
                    batched.map(layer, method)[i],
                    single.map(layer, method)[0],
                    rtol=1e-4,
                    atol=1e-6,
                )


def test_each_image_map_is_independent_of_the_rest_of_the_batch():
    model, x = tiny_model(), images(4)
    other = x.copy()
    other[1:] = images(3, seed=7) * 5
    a = gc.grad_cam(model, x, "act1").map("act1")[0]
    b = gc.grad_cam(model, other, "act1").map("act1")[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a, gc.grad_cam(model, other[1:2], "act1").map("act1")[0])


def test_last_conv_layer_grad_cam_is_the_classic_cam():
    model, x = tiny_model(), images(3)
    result = gc.grad_cam(model, x, "act2", methods=["gradcam", "hirescam"], upsample_maps=False)
    passed = gc.compute_gradients(model, x, "act2")
    a = passed.activations["act2"]
    kernel = model.get_layer("logits").get_weights()[0]
    classic = np.maximum(np.einsum("nhwk,kn->nhw", a, kernel[:, result.class_index]), 0)
    z = a.shape[1] * a.shape[2]  # the gradient is W[k, c] / Z at every position
    np.testing.assert_allclose(
        passed.gradients["act2"],
        np.broadcast_to(kernel[:, result.class_index].T[:, None, None] / z, a.shape),
        rtol=1e-5,
    )
    np.testing.assert_allclose(result.map("act2") * z, classic, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.map("act2", "hirescam") * z, classic, rtol=1e-4, atol=1e-6)


def test_softmax_score_follows_the_chain_rule():
    model, x = tiny_model(), images(4)
    per_class = [gc.compute_gradients(model, x, "act1", class_index=j) for j in range(3)]
    soft = gc.compute_gradients(model, x, "act1", score="softmax")
    p = gc.CamResult({}, soft.logits, soft.class_index, (), "softmax").probabilities
    g = np.stack([pc.gradients["act1"] for pc in per_class])  # (classes, N, h, w, K)
    c = soft.class_index
    n = np.arange(len(x))
    # d p_c / dA = p_c (d z_c / dA - sum_j p_j d z_j / dA)
    expected = p[n, c][:, None, None, None] * (g[c, n] - np.einsum("nj,jnhwk->nhwk", p, g))
    np.testing.assert_allclose(soft.gradients["act1"], expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(soft.gradients["act1"], g[c, n])


def test_class_choices():
    model, x = tiny_model(), images(4)
    labels = np.array([0, 1, 2, 1])
    assert list(
        gc.grad_cam(model, x, "act1", class_index="true", labels=labels).class_index
    ) == list(labels)
    assert list(gc.grad_cam(model, x, "act1", class_index=2).class_index) == [2, 2, 2, 2]
    predicted = gc.grad_cam(model, x, "act1")
    np.testing.assert_array_equal(predicted.class_index, predicted.predicted)
    with pytest.raises(ValueError, match="labels"):
        gc.grad_cam(model, x, "act1", class_index="true")
    with pytest.raises(ValueError, match="< 3"):
        gc.grad_cam(model, x, "act1", class_index=3)
    with pytest.raises(ValueError, match="preprocess"):
        gc.grad_cam(model, (x * 0).astype(np.uint8), "act1")


def test_unknown_layer_error_lists_usable_layers_in_depth_order():
    model = tiny_model()
    assert gc.cam_layers(model) == ["conv1", "act1", "conv2", "act2"]
    with pytest.raises(ValueError, match="conv1, act1, conv2, act2") as info:
        gc.grad_cam(model, images(1), ["act1", "nope"])
    assert "nope" in str(info.value)
    with pytest.raises(ValueError, match="cannot use"):
        gc.grad_cam(model, images(1), "logits")  # a 2-D output


def test_zero_gradients_and_negative_maps_give_zeros_not_nan():
    model = tiny_model()
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([np.zeros_like(kernel), bias])
    result = gc.grad_cam(model, images(3), ["act1", "act2"], methods=list(gc.METHODS))
    for method in gc.METHODS:
        for mode in gc.NORMALISATIONS:
            for maps in result.normalised(mode, method).values():
                assert np.isfinite(maps).all() and not maps.any()
    negative = -np.ones((2, 3, 3), np.float32)
    assert not gc.normalise(negative, "per_map").any()
    assert not gc.normalise([negative, negative * 0], "shared")[0].any()


def test_normalisation_modes():
    a = np.array([[[0.0, 2.0], [1.0, 0.0]], [[0.0, 0.5], [0.0, 0.0]]], np.float32)
    b = 4 * a
    per_map = gc.normalise({"a": a, "b": b}, "per_map")
    np.testing.assert_allclose(per_map["a"].max(axis=(1, 2)), [1, 1])
    np.testing.assert_allclose(per_map["a"], per_map["b"])
    shared = gc.normalise([a, b], "shared")
    np.testing.assert_allclose(shared[1].max(), 1)
    np.testing.assert_allclose(shared[0], a / 8)
    raw = gc.normalise(a, "raw")
    np.testing.assert_array_equal(raw, a)
    assert raw is not a
    with pytest.raises(ValueError, match="per_map"):
        gc.normalise(a, "minmax")


def test_weight_changes_reach_the_cached_gradient_function():
    model, x = tiny_model(), images(2)
    step = gc.gradient_step(model, ["act1"], "logit")
    assert gc.gradient_step(model, ["act1"], "logit") is step
    assert gc.gradient_step(model, ["act1"], "softmax") is not step
    before = gc.grad_cam(model, x, "act1").map("act1")
    model.set_weights([w * 1.5 for w in model.get_weights()])
    after = gc.grad_cam(model, x, "act1").map("act1")
    assert not np.allclose(before, after)


def naive_score_cam(model, x, layer):
    """Score-CAM one channel at a time, straight from its definition."""
    features = keras.Model(
        model.inputs, [model.get_layer(layer).output, model.get_layer("logits").output]
    )
    out = []
    for image in x:
        a, z = (np.asarray(t) for t in features([image[None]], training=False))
        c, a = int(z[0].argmax()), a[0]
        weights = []
        for k in range(a.shape[-1]):
            up = cv2.resize(a[..., k], x.shape[1:3], interpolation=cv2.INTER_LINEAR)
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else np.zeros_like(up)
            weights.append(np.asarray(model(image[None] * mask[..., None], training=False))[0, c])
        out.append(np.maximum(np.einsum("hwk,k->hw", a, np.array(weights)), 0))
    return np.stack(out)


def test_score_cam_matches_its_definition():
    model, x = tiny_model(), images(2)
    maps = gc.score_cam(model, x, "conv2", batch_size=4, upsample_maps=False)
    np.testing.assert_allclose(maps, naive_score_cam(model, x, "conv2"), rtol=1e-4, atol=1e-6)
    assert gc.score_cam(model, x, "conv2").shape == (2, 8, 8)


def test_overlay_range_dtype_and_rgb_colours():
    image = np.full((8, 8, 3), 0.5, np.float32)
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0] = 1.0
    out = gc.overlay(image, cam, alpha=0.4)
    assert out.dtype == np.float32 and out.shape == (8, 8, 3)
    assert out.min() >= 0 and out.max() <= 1
    jet = np.asarray(matplotlib.colormaps["jet"]([0.0, 1.0])[:, :3], np.float32)
    np.testing.assert_allclose(out[0, 0], 0.6 * 0.5 + 0.4 * jet[1], rtol=1e-5)  # red, not blue
    np.testing.assert_allclose(out[7, 7], 0.6 * 0.5 + 0.4 * jet[0], rtol=1e-5)
    np.testing.assert_allclose(gc.overlay(image, cam, alpha=0.0), image)
    batch = gc.overlay(np.stack([image, image]), np.stack([cam, cam]))
    assert batch.shape == (2, 8, 8, 3)
    with pytest.raises(ValueError, match="deprocess"):
        gc.overlay(image * 255, cam)
    with pytest.raises(ValueError, match="normalise"):
        gc.overlay(image, cam * 3)


def test_original_recipe_reproduces_its_bugs():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    cam = rng.random((4, 4)).astype(np.float32)
    buggy = gc.original_recipe_overlay(image, cam)
    assert buggy.dtype == np.uint8 and buggy.shape == (8, 8, 3)
    # the image is divided by 255 twice: a different image moves no pixel by more than 1
    other = gc.original_recipe_overlay(255 - image, cam)
    assert np.abs(buggy.astype(int) - other.astype(int)).max() <= 1
    # without wrap-around, heat * 0.4 * 255 would saturate at 255 almost everywhere
    assert (buggy < 200).mean() > 0.5


def test_recipe_comparison_on_a_model():
    model = tiny_model()
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    original, corrected = gc.recipe_comparison(
        model, image, "act1", preprocess=lambda p: np.asarray(p, np.float32) / 127.5 - 1
    )
    assert original.dtype == np.uint8 and corrected.dtype == np.float32
    assert original.shape == corrected.shape == (8, 8, 3)
    assert 0 <= corrected.min() and corrected.max() <= 1


def test_xception_layer_sets_and_a_real_pass():
    from helpers.xception import build_xception

    model = build_xception((71, 71, 3), num_classes=3, seed=0)
    layers = gc.cam_layers(model)
    stages = gc.residual_stages(model)
    assert stages[0] == gc.SHALLOW and stages[-1] == gc.DEEP and len(stages) == 13
    assert [layers.index(n) for n in stages] == sorted(layers.index(n) for n in stages)
    assert set(gc.ORIGINAL_LAYERS) <= set(stages)
    x = images(2, 71)
    result = gc.grad_cam(model, x, gc.ORIGINAL_LAYERS, methods=list(gc.METHODS))
    for layer in gc.ORIGINAL_LAYERS:
        assert result.map(layer).shape == (2, 71, 71) and np.isfinite(result.map(layer)).all()
    # at the last conv block Grad-CAM equals HiResCAM (spatially constant gradients)
    np.testing.assert_allclose(
        result.map(gc.DEEP), result.map(gc.DEEP, "hirescam"), rtol=1e-3, atol=1e-6
    )


OTHER_BACKEND = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    from helpers import gradcam as gc
    model = keras.models.load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    out = {}
    for score in gc.SCORES:
        r = gc.grad_cam(model, x, ["act1", "conv2", "act2"], score=score, methods=list(gc.METHODS))
        for m, per in r.maps.items():
            for layer, maps in per.items():
                out[f"{score}/{m}/{layer}"] = maps
        out[f"{score}/logits"] = r.logits
    np.savez(sys.argv[3], **out)
    print(json.dumps(keras.backend.backend()))
    """
)


def test_tensorflow_and_jax_give_the_same_maps(tmp_path):
    model, x = tiny_model(seed=3), images(4, seed=4)
    model.save(tmp_path / "tiny.keras")
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": OTHER_BACKEND}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path / "tiny.keras"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "maps.npz"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == OTHER_BACKEND
    theirs = np.load(tmp_path / "maps.npz")
    for score in gc.SCORES:
        ours = gc.grad_cam(
            model, x, ["act1", "conv2", "act2"], score=score, methods=list(gc.METHODS)
        )
        np.testing.assert_allclose(ours.logits, theirs[f"{score}/logits"], rtol=1e-4, atol=1e-5)
        for m, per in ours.maps.items():
            for layer, maps in per.items():
                scale = max(float(maps.max()), 1e-12)
                np.testing.assert_allclose(
                    maps / scale,
                    theirs[f"{score}/{m}/{layer}"] / scale,
                    atol=1e-4,
                    err_msg=f"{score}/{m}/{layer}",
                )


def test_deep_layer_equivalence_on_xception():
    """At block14_sepconv2_act (GAP + logits after it) Grad-CAM is the original CAM."""
    from helpers.gradcam import deep_layer_equivalence
    from helpers.xception import build_xception

    model = build_xception((71, 71, 3), 3, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 71, 71, 3)).astype("float32")
    check = deep_layer_equivalence(model, x)
    assert check["gradient_spatial_spread"] < 1e-4
    assert check["max_relative_difference"] < 1e-4
    # An intermediate layer is not spatially constant: the check can tell the difference.
    from helpers.gradcam import compute_gradients

    g = compute_gradients(model, x, ["block9_add"]).gradients["block9_add"]
    assert np.abs(g - g.mean(axis=(1, 2), keepdims=True)).max() > 1e-3 * np.abs(g).max()


def test_classic_cam_is_the_dense_weighted_sum():
    from helpers.gradcam import classic_cam

    inputs = keras.Input((4, 4, 2))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    logits = keras.layers.Dense(3, use_bias=False, name="logits")(pooled)
    model = keras.Model(inputs, logits)
    kernel = np.arange(6, dtype="float32").reshape(2, 3)
    model.get_layer("logits").set_weights([kernel])
    acts = np.random.default_rng(1).normal(size=(2, 4, 4, 2)).astype("float32")
    got = classic_cam(model, acts, [2, 0])
    expected = np.stack([acts[0] @ kernel[:, 2], acts[1] @ kernel[:, 0]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
