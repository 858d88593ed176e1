"""helpers.diagnostics: degenerate maps are counted, and every pair of models is compared."""

import math

import numpy as np
import pytest

from helpers.diagnostics import map_health, pairwise_agreement, plot_agreement_matrices

rng = np.random.default_rng(0)


def test_map_health_counts_dead_constant_and_spread_maps():
    hot = np.zeros((4, 4))
    hot[1, 2] = 3.0
    maps = np.stack([np.zeros((4, 4)), np.full((4, 4), 2.0), hot, hot])
    health = map_health(maps)
    assert health.zero == 0.25 and health.constant == 0.5
    assert health.above_half == pytest.approx(1 / 16) and health.entropy == pytest.approx(0.0)
    spread = map_health(rng.random((8, 6, 6)) + 1.0)
    assert spread.constant == 0 and 0.9 < spread.entropy <= 1 and spread.above_half > 0.9
    dead = map_health(np.zeros((3, 2, 2)))
    assert dead.zero == 1 and math.isnan(dead.entropy) and math.isnan(dead.above_half)


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2)), np.zeros((0, 2, 2)), -np.ones((1, 2, 2)), np.full((1, 2, 2), np.nan)]
)
def test_map_health_rejects_what_is_not_a_stack_of_cams(bad):
    with pytest.raises(ValueError, match="maps"):
        map_health(bad)


def test_pairwise_agreement_is_a_symmetric_matrix_of_means():
    a = rng.random((5, 6, 6))
    b = rng.random((5, 6, 6))
    maps = {
        "A": {"l1": a, "l2": a},
        "A again": {"l1": 2 * a, "l2": a**2},
        "reversed": {"l1": 1 - a, "l2": 1 - a},
        "B": {"l1": b, "l2": b},
    }
    names, m = pairwise_agreement(maps, ["l1", "l2"])
    assert names == ["A", "A again", "reversed", "B"]
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1)
    assert m[0, 1] == pytest.approx(1) and m[0, 2] == pytest.approx(-1)
    assert abs(m[0, 3]) < 0.5
    _, iou = pairwise_agreement(maps, ["l1"], metric="iou")
    assert iou[0, 1] == pytest.approx(1) and iou[0, 2] == pytest.approx(0)


def test_pairwise_agreement_leaves_out_constant_maps_and_checks_its_input():
    a = rng.random((2, 4, 4))
    flat = a.copy()
    flat[0] = 0.0  # one dead map: only the other image counts
    names, m = pairwise_agreement({"x": {"l": a}, "y": {"l": flat}}, ["l"])
    assert m[0, 1] == pytest.approx(1)
    _, dead = pairwise_agreement({"x": {"l": a}, "y": {"l": np.zeros_like(a)}}, ["l"])
    assert math.isnan(dead[0, 1])
    with pytest.raises(ValueError, match="metric must be one of"):
        pairwise_agreement({"x": {"l": a}}, ["l"], metric="pearson")
    with pytest.raises(ValueError, match="lack these"):
        pairwise_agreement({"x": {"l": a}, "y": {}}, ["l"])


def test_plot_agreement_matrices_draws_one_heatmap_per_band():
    m = np.array([[1.0, 0.2], [0.2, 1.0]])
    fig = plot_agreement_matrices(["a", "b"], {"shallow": m, "deep": m})
    assert [ax.get_title() for ax in fig.axes[:2]] == ["shallow", "deep"]
    assert len(fig.axes) == 3  # two heatmaps and the colour bar


def test_depth_bands_split_the_thirteen_stages_in_order():
    from helpers.diagnostics import depth_bands

    layers = [f"l{i}" for i in range(13)]
    found = depth_bands(layers)
    assert list(found) == ["shallow", "middle", "deep"]
    assert [len(v) for v in found.values()] == [4, 4, 5]
    assert sum(found.values(), []) == layers
    with pytest.raises(ValueError, match="at least 3 layers"):
        depth_bands(["a", "b"])


def test_health_table_averages_the_band_per_model():
    from helpers.diagnostics import health_table

    hot = np.zeros((2, 4, 4))
    hot[:, 0, 0] = 1.0
    maps = {"dead": {"a": np.zeros((2, 4, 4)), "b": hot}, "alive": {"a": hot, "b": hot}}
    head, dead, alive = health_table(maps, ["a", "b"]).splitlines()
    assert head.split() == ["model", "all", "zero", "constant", "above", "half", "entropy"]
    assert dead.split() == ["dead", "50.0%", "50.0%", "0.06", "0.00"]  # spread from layer b only
    assert alive.split() == ["alive", "0.0%", "0.0%", "0.06", "0.00"]


def test_matrix_table_writes_every_pair():
    from helpers.diagnostics import matrix_table

    lines = matrix_table(["regular s0", "article s1"], [[1.0, 0.25], [0.25, 1.0]]).splitlines()
    assert lines[0].split() == ["regular", "s0", "article", "s1"]
    assert lines[1].split() == ["regular", "s0", "1.00", "0.25"]
    assert lines[2].split()[-2:] == ["0.25", "1.00"]
