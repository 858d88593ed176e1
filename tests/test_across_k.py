"""Chapter 8's comparison of losses at several numbers of classes, on maps made to differ."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.across_k import (
    LossAtK,
    across_k_sentence,
    compare_across_k,
    format_across_k,
    mean_accuracy_by_kind,
    readings_that_change,
)

LAYERS = [f"block{i}_add" for i in range(2, 8)]


def synthetic_maps(kinds: dict[str, int], far: set[str], seed: int, n: int = 30) -> dict:
    """Models draw noisy copies of one map per image, except those of the ``far`` kinds, which
    draw maps of their own: they agree with a regular model less than two regular models do."""
    rng = np.random.default_rng(seed)
    truth = {layer: rng.normal(size=(n, 4, 4)) for layer in LAYERS}
    maps = {}
    for kind, n_seeds in kinds.items():
        for s in range(n_seeds):
            maps[f"{kind} s{s}"] = {
                layer: (rng.normal(size=(n, 4, 4)) if kind in far else truth[layer])
                + 0.5 * rng.normal(size=(n, 4, 4))
                for layer in LAYERS
            }
    return maps


@pytest.fixture(scope="module")
def results():
    three = synthetic_maps({"regular": 4, "far": 3, "close": 3, "few": 2}, {"far"}, seed=1)
    four = synthetic_maps({"regular": 3, "far": 3, "close": 3}, {"far", "close"}, seed=2)
    return compare_across_k({3: three, 4: four}, ["far", "close", "few"], n_boot=300)


def test_a_loss_whose_maps_are_unrelated_moves_them_at_every_k(results):
    for k in (3, 4):
        r = results[("far", k)]
        assert r.reading == "moves" and len(r.below) == len(LAYERS) and not r.above
        assert all(e.high < 0 for e in r.bands.values())
        assert r.n_seeds == {"regular": 4 if k == 3 else 3, "far": 3}


def test_a_loss_like_the_regular_one_stays_and_a_change_with_k_is_said(results):
    assert results[("close", 3)].reading == "stays"
    assert results[("close", 4)].reading == "moves"
    sentence = across_k_sentence(results, ["far", "close"])
    assert sentence.startswith("far moves the maps away from a regular model's at both three "
                               "and four classes (below the control at 6 and 6 of 6 stages)")  # fmt: skip
    assert "close leaves them where a second regular model puts them at three classes" in sentence
    assert "but moves the maps away from a regular model's at four classes (6 of 6)" in sentence


def test_only_a_reading_that_changes_with_k_is_named(results):
    assert readings_that_change(results, ["far", "close", "few"]) == (
        "close leaves them in place at three classes but moves the maps at four")  # fmt: skip
    assert readings_that_change(results, ["far", "few"]) == ""  # same at both K, or unmeasured
    one_k = {("close", 4): results[("close", 4)], ("close", 3): None}
    assert readings_that_change(one_k, ["close"]) == ""  # measured at one K: nothing to compare


def test_too_few_seeds_is_not_compared_but_reported(results):
    assert results[("few", 3)] is None and results[("few", 4)] is None
    assert "few is not measured yet at any number of classes" in across_k_sentence(results, ["few"])
    half = {("far", 3): results[("far", 3)], ("far", 4): None}
    assert across_k_sentence(half, ["far"]) == (
        "far moves the maps away from a regular model's at three classes "
        "(below the control at 6 of 6 stages; not yet measured at four).")  # fmt: skip
    table = format_across_k(results)
    assert table.count("not stored yet") == 2 and "6/0 of 6" in table


def test_the_reading_follows_the_stated_thresholds():
    def at(below: int, above: int) -> str:
        names = [f"l{i}" for i in range(13)]
        return LossAtK("x", 3, {}, {}, names[:below], names[below : below + above], 13).reading

    assert (at(7, 0), at(6, 0), at(2, 0), at(1, 1), at(3, 0), at(0, 7)) == (
        "moves", "mixed", "stays", "stays", "mixed", "agrees more")  # fmt: skip


def test_the_figure_has_a_panel_per_k_and_says_where_a_loss_is_missing(results):
    from helpers.across_k import across_k_figure

    fig = across_k_figure(results, ["far", "close", "few"])
    three, four = fig.axes
    assert (three.get_title(), four.get_title()) == (
        "Three classes (K = 3)",
        "Four classes (K = 4)",
    )
    # far and close have the seeds at both K ("few" at neither): two series and the zero line each
    for ax, k in ((three, 3), (four, 4)):
        assert len(ax.containers) == 2
        far = ax.containers[0][0].get_ydata()  # the line of means
        assert np.allclose(
            sorted(far), sorted(e.mean for e in results[("far", k)].per_layer.values())
        )
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["no difference from the control", "far", "close"]
    half = {("far", 3): results[("far", 3)], ("far", 4): None}
    empty = across_k_figure(half, ["far"]).axes[1]
    assert [t.get_text() for t in empty.texts] == ["not stored yet"]
    with pytest.raises(ValueError, match="nothing to draw"):
        across_k_figure({("far", 3): None}, ["far"])


def test_the_accuracy_of_the_compared_models_is_averaged_per_kind():
    stored = {"regular s0": 0.9, "regular s1": 1.0, "article s0": 0.5, "scl exp s2": 0.25}
    assert mean_accuracy_by_kind(stored) == pytest.approx(
        {"article": 0.5, "regular": 0.95, "scl exp": 0.25}
    )
    assert mean_accuracy_by_kind({}) == {}
    with pytest.raises(ValueError, match="is not '<kind> s<seed>'"):
        mean_accuracy_by_kind({"regular": 0.9})
