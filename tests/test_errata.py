"""helpers.errata: the original's second /255 changes the model's input, and we measure it."""

import numpy as np
import pytest
from test_gradcam import tiny_model

from helpers.errata import input_scaling_effect


def pixels(n=6, size=8, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_a_second_division_changes_what_the_model_sees():
    model = tiny_model(seed=0)
    images = pixels()
    labels = np.array([0, 1, 2, 0, 1, 2])
    effect = input_scaling_effect(model, images, ["act1", "act2"], labels)
    assert set(effect.map_agreement) == {"act1", "act2"}
    assert 0.0 <= effect.same_prediction <= 1.0
    assert effect.accuracy is not None
    once, twice = effect.accuracy
    assert 0 <= once <= 1 and 0 <= twice <= 1
    # Scaled twice, every input is nearly zero: the model answers about the same for all.
    x_twice = (images.astype(np.float32) / 127.5 - 1) / 255
    predicted = np.asarray(model(x_twice)).argmax(axis=1)
    assert len(set(predicted.tolist())) == 1
    assert effect.map_agreement["act1"] < 0.99


def test_an_identity_second_scale_changes_nothing(monkeypatch):
    import helpers.errata as errata

    monkeypatch.setattr(errata, "SECOND_SCALE", 1.0)
    effect = input_scaling_effect(tiny_model(seed=0), pixels(), ["act1", "act2"])
    assert effect.same_prediction == 1.0 and effect.accuracy is None
    for value in effect.map_agreement.values():
        assert value == pytest.approx(1.0) or np.isnan(value)
