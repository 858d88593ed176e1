"""Tests for helpers.xception: architecture, names, parameter count, summary, seeding."""

import keras
import numpy as np
import pytest

from helpers.xception import (
    RESIDUAL_BLOCKS,
    build_xception,
    format_stage_summary,
    logits_model,
    stage_summary,
)

SMALL = (71, 71, 3)


@pytest.fixture(scope="module")
def small_model():
    return build_xception(SMALL, num_classes=3, seed=0)


@pytest.fixture(scope="module")
def reference_small():
    return keras.applications.Xception(weights=None, classes=3, input_shape=SMALL)


def _anonymous(name: str) -> bool:
    """Keras' auto-numbered names, which build_xception replaces with stable ones."""
    return name.split("_")[0] in {"add", "conv2d", "batch", "input"}


def test_has_every_keras_applications_name(small_model, reference_small):
    names = {layer.name for layer in small_model.layers}
    expected = {layer.name for layer in reference_small.layers if not _anonymous(layer.name)} - {
        "predictions"
    }
    assert expected <= names
    assert "block1_conv1" in names and "block14_sepconv2_act" in names


def test_residual_adds_pool_logits_and_predictions_are_named(small_model):
    adds = [layer.name for layer in small_model.layers if isinstance(layer, keras.layers.Add)]
    assert (
        adds
        == [f"block{b}_add" for b in range(2, 14)]
        == [f"block{b}_add" for b in RESIDUAL_BLOCKS]
    )
    assert isinstance(small_model.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)
    logits = small_model.get_layer("logits")
    assert isinstance(logits, keras.layers.Dense)
    assert logits.activation is keras.activations.linear
    assert small_model.get_layer("predictions").activation is keras.activations.softmax
    assert small_model.layers[-1].name == "predictions"
    assert not any(isinstance(layer, keras.Model) for layer in small_model.layers)  # flat


def test_parameter_count_matches_keras_applications(small_model, reference_small):
    assert small_model.count_params() == reference_small.count_params()


def test_builds_at_299_with_keras_applications_parameter_count():
    model = build_xception((299, 299, 3), num_classes=3)
    reference = keras.applications.Xception(weights=None, classes=3, input_shape=(299, 299, 3))
    assert model.count_params() == reference.count_params()
    assert model.output_shape == (None, 3)
    assert model.get_layer("block14_sepconv2_act").output.shape == (None, 10, 10, 2048)


def test_names_do_not_depend_on_what_was_built_before():
    first = [layer.name for layer in build_xception(SMALL, seed=1).layers]
    keras.layers.Add()  # bump Keras' auto-numbering, as other models in a session would
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    second = [layer.name for layer in build_xception(SMALL, seed=1).layers]
    assert first == second
    assert len(first) == len(set(first))


def test_output_rows_sum_to_one_and_softmax_of_logits(small_model):
    x = np.random.default_rng(0).uniform(-1, 1, (4, *SMALL)).astype("float32")
    probs = keras.ops.convert_to_numpy(small_model(x, training=False))
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    logits = keras.ops.convert_to_numpy(logits_model(small_model)(x, training=False))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.softmax(logits)), probs, rtol=1e-4, atol=1e-6
    )


def test_logits_model_shares_weights(small_model):
    sub = logits_model(small_model)
    assert sub.get_layer("block1_conv1") is small_model.get_layer("block1_conv1")
    assert sub.output_shape == (None, 3)
    with pytest.raises(ValueError, match="logits"):
        logits_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))


def test_same_seed_same_weights_other_seed_other_weights(small_model):
    again = build_xception(SMALL, seed=0)
    other = build_xception(SMALL, seed=1)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(small_model.get_weights(), again.get_weights(), strict=True)
    )
    assert not np.array_equal(
        small_model.get_layer("block1_conv1").get_weights()[0],
        other.get_layer("block1_conv1").get_weights()[0],
    )


def test_bn_momentum_reaches_every_batch_norm():
    model = build_xception(SMALL, bn_momentum=0.9)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 40
    assert {bn.momentum for bn in bns} == {0.9}


def test_stage_summary_adds_up(small_model, capsys):
    rows = stage_summary(small_model)
    assert [r[0].split(" (")[0] for r in rows] == [
        "input",
        "entry flow",
        "middle flow",
        "exit flow",
        "head",
    ]
    assert sum(r[2] for r in rows) == small_model.count_params()
    assert rows[1][1] == (None, 5, 5, 728)
    assert rows[3][1] == (None, 3, 3, 2048)
    assert rows[4][1] == (None, 3) and rows[4][2] == 2048 * 3 + 3
    format_stage_summary(small_model)
    assert "middle flow" in capsys.readouterr().out


@pytest.mark.parametrize("shape", [(64, 64, 3), (71, 71, 1), (71, 71)])
def test_rejects_unusable_input_shapes(shape):
    with pytest.raises(ValueError, match="71|RGB"):
        build_xception(shape)


def test_fewer_middle_blocks_drop_the_last_ones_and_nothing_else(small_model):
    shallow = build_xception(SMALL, num_classes=3, seed=0, middle_blocks=1)
    names = {layer.name for layer in shallow.layers}
    assert "block5_add" in names and "block6_add" not in names and "block12_add" not in names
    assert {"block4_add", "block13_add", "block14_sepconv2_act", "logits"} <= names
    # Each middle block is three separable convolutions of 728 channels and their BatchNorms.
    per_block = (small_model.count_params() - shallow.count_params()) / 7
    assert per_block == 3 * (728 * 9 + 728 * 728 + 4 * 728)
    assert shallow.output.shape == small_model.output.shape


@pytest.mark.parametrize("blocks", [-1, 9])
def test_rejects_a_middle_flow_xception_does_not_have(blocks):
    with pytest.raises(ValueError, match="middle_blocks must lie in 0..8"):
        build_xception(SMALL, middle_blocks=blocks)
