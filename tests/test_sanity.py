"""Cascading randomisation changes exactly the weights it claims, on a tiny named model."""

import keras
import numpy as np
import pytest

from helpers.sanity import (
    cascading_randomization,
    changed_weights,
    clone_with_weights,
    randomization_groups,
    reinitialize_layer,
    weight_names,
)


def tiny_model():
    """Xception-like names: blocks with a shortcut, a weightless add, GAP, logits, softmax."""
    inp = keras.Input((8, 8, 3), name="input")
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv1")(inp)
    x = keras.layers.BatchNormalization(name="block1_conv1_bn")(x)
    x = keras.layers.Activation("relu", name="block1_conv1_act")(x)
    r = keras.layers.Conv2D(6, 1, use_bias=False, name="block2_shortcut_conv")(x)
    x = keras.layers.SeparableConv2D(6, 3, padding="same", name="block2_sepconv1")(x)
    x = keras.layers.BatchNormalization(name="block2_sepconv1_bn")(x)
    x = keras.layers.Add(name="block2_add")([x, r])
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="block3_dwconv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(3, name="logits")(x)
    out = keras.layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inp, out)


def trained_like(model, seed=0):
    """Move every weight away from its initial value, as training would."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape) for w in model.weights])
    return model


def logits_of(model, x):
    return keras.Model(model.input, model.get_layer("logits").output)(x, training=False)


def snapshot(model):
    return [np.asarray(w).copy() for w in model.weights]


def layer_weights(model, layer_names):
    return {n for name in layer_names for n in weight_names(model.get_layer(name))}


def test_block_groups_go_from_the_top_down():
    groups = randomization_groups(tiny_model())
    assert [g for g, _ in groups] == ["logits", "block3", "block2", "block1"]
    block2 = dict(groups)["block2"]
    assert set(block2) == {"block2_sepconv1_bn", "block2_sepconv1", "block2_shortcut_conv"}


def test_layer_groups_are_every_layer_with_weights_in_reverse():
    model = tiny_model()
    names = [g for g, _ in randomization_groups(model, "layer")]
    with_weights = [layer.name for layer in model.layers if layer.weights]
    assert names == with_weights[::-1]
    with pytest.raises(ValueError, match="granularity"):
        randomization_groups(model, "stage")


def test_each_step_changes_exactly_the_weights_it_claims_and_no_others():
    model = trained_like(tiny_model())
    before = snapshot(model)
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    trained_logits = np.asarray(logits_of(model, x))
    claimed_layers = []
    steps = 0
    for step in cascading_randomization(model, seed=3):
        steps += 1
        claimed_layers += step.layers
        assert set(step.reinitialized) == layer_weights(model, claimed_layers)
        assert sorted(changed_weights(model, step.model)) == sorted(step.reinitialized)
        if step.group == "logits":
            assert not np.allclose(np.asarray(logits_of(step.model, x)), trained_logits)
    assert steps == 4
    assert len(step.reinitialized) == len(model.weights)  # all weights by the end
    for a, b in zip(before, snapshot(model), strict=True):  # the original is untouched
        np.testing.assert_array_equal(a, b)


def test_reinitialization_uses_each_layers_initialiser():
    model = trained_like(tiny_model())
    clone = clone_with_weights(model)
    reinitialize_layer(clone.get_layer("block1_conv1_bn"))
    bn = {v.name: np.asarray(v) for v in clone.get_layer("block1_conv1_bn").weights}
    np.testing.assert_array_equal(bn["gamma"], 1.0)
    np.testing.assert_array_equal(bn["beta"], 0.0)
    np.testing.assert_array_equal(bn["moving_mean"], 0.0)
    np.testing.assert_array_equal(bn["moving_variance"], 1.0)
    reinitialize_layer(clone.get_layer("block1_conv1"))
    kernel = np.asarray(clone.get_layer("block1_conv1").kernel)
    limit = np.sqrt(6 / (3 * 3 * 3 + 3 * 3 * 4))  # glorot_uniform bound
    assert np.abs(kernel).max() <= limit and kernel.std() > limit / 4


def test_randomization_is_reproducible_with_a_seed():
    model = trained_like(tiny_model())

    def last_weights(seed):
        *_, last = cascading_randomization(model, seed=seed)
        return snapshot(last.model)

    a, b, c = last_weights(0), last_weights(0), last_weights(1)
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a, c, strict=True))


def test_explicit_groups_and_changed_weights_tolerance():
    model = trained_like(tiny_model())
    steps = list(cascading_randomization(model, groups=[("head", ["logits"])]))
    assert [s.group for s in steps] == ["head"]
    assert sorted(changed_weights(model, steps[0].model)) == ["logits/bias", "logits/kernel"]
    clone = clone_with_weights(model)
    w = clone.get_layer("logits").kernel
    w.assign(np.asarray(w) + 1e-7)
    assert changed_weights(model, clone) == ["logits/kernel"]
    assert changed_weights(model, clone, atol=1e-5) == []


def test_randomization_curve_starts_at_one_and_moves():
    from helpers.sanity import randomization_curve
    from helpers.xception import build_xception

    model = build_xception((71, 71, 3), 3, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 71, 71, 3)).astype("float32")
    steps, corr, maps = randomization_curve(model, x, ["block9_add"], class_index=0)
    assert steps[0] == "trained" and steps[1] == "logits" and steps[-1] == "block1"
    assert len(corr["block9_add"]) == len(steps) == len(maps["block9_add"])
    assert corr["block9_add"][0] == pytest.approx(1.0) or np.all(maps["block9_add"][0] == 0)
    assert corr["block9_add"][-1] < 0.99
