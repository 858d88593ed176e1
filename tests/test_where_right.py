"""Chapter 8's comparison on only the images every compared model classifies right."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.where_right import (
    compare_where_right,
    format_where_right,
    right_everywhere,
    where_right_sentence,
)

LAYERS = [f"block{i}_add" for i in range(2, 8)]
N = 60


def errors_move_the_maps(seed: int = 0):
    """Every model draws a noisy copy of one map per image, except that a `weak` model draws a
    map of its own on the images it gets wrong (the first half): there, and only there, its
    maps are far from a regular model's."""
    rng = np.random.default_rng(seed)
    truth = {layer: rng.normal(size=(N, 4, 4)) for layer in LAYERS}
    labels = np.arange(N) % 3
    wrong = np.arange(N) < N // 2
    maps, predictions = {}, {}
    for kind in ("regular", "weak"):
        for s in range(3):
            name = f"{kind} s{s}"
            maps[name] = {}
            for layer in LAYERS:
                own = truth[layer] + 0.5 * rng.normal(size=(N, 4, 4))
                if kind == "weak":
                    own[wrong] = rng.normal(size=(wrong.sum(), 4, 4))
                maps[name][layer] = own
            predictions[name] = np.where(wrong & (kind == "weak"), (labels + 1) % 3, labels)
    return maps, labels, predictions


def test_the_mask_keeps_the_images_every_model_gets_right():
    labels = np.array([0, 1, 2, 0])
    predictions = {"a s0": [0, 1, 0, 0], "b s0": [0, 2, 2, 0]}
    assert list(right_everywhere(labels, predictions, ["a s0", "b s0"])) == [1, 0, 0, 1]
    assert list(right_everywhere(labels, predictions, ["a s0"])) == [1, 1, 0, 1]
    with pytest.raises(KeyError):
        right_everywhere(labels, predictions, ["c s0"])


def test_a_loss_that_moves_the_maps_only_where_it_errs_stays_on_the_images_it_gets_right():
    maps, labels, predictions = errors_move_the_maps()
    everywhere = compare_where_right(maps, labels, dict.fromkeys(maps, labels), ["weak"], 4,
                                     n_boot=300)["weak"]  # fmt: skip
    assert everywhere.n_images == N and everywhere.result.reading == "moves"
    found = compare_where_right(maps, labels, predictions, ["weak"], 4, n_boot=300)
    right = found["weak"]
    assert right.n_images == N // 2 and right.of_images == N
    assert right.result.reading == "stays" and right.result.n_seeds == {"regular": 3, "weak": 3}
    sentence = where_right_sentence(found, 4)
    assert sentence.startswith("At four classes, on the images every model compared gets right")
    assert "weak leaves them where a second regular model puts them (30 of 60 images" in sentence
    table = format_where_right(found, 4)
    assert table.startswith("weak     30 of 60 images right for every model") and "stays" in table


def test_missing_predictions_and_too_few_images_are_said_not_compared():
    maps, labels, predictions = errors_move_the_maps()
    del predictions["weak s2"]
    found = compare_where_right(maps, labels, predictions, ["weak"], 4, n_boot=50)
    assert found["weak"].result is None and found["weak"].missing == ("weak s2",)
    assert "weak s2 were stored without their predictions" in where_right_sentence(found, 4)
    assert format_where_right(found, 4) == "weak     no predictions stored for weak s2"
    few = compare_where_right(maps, labels, dict.fromkeys(maps, labels), ["weak"], 4,
                              min_images=N + 1, n_boot=50)  # fmt: skip
    assert few["weak"].result is None and few["weak"].n_images == N
    assert f"only {N} of {N} images" in where_right_sentence(few, 4)
    two = {m: a for m, a in maps.items() if m != "weak s2"}
    seeds = compare_where_right(two, labels, dict.fromkeys(two, labels), ["weak"], 4, n_boot=50)
    assert seeds["weak"].result is None and seeds["weak"].too_few_seeds
    assert "too few models of it or of the regular kind" in where_right_sentence(seeds, 4)
