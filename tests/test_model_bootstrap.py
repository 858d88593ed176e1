"""The two-level (seeds, then images) bootstrap, and maps stored without their models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.agreement import paired_difference, rank_correlation, top_region_iou
from helpers.comparisons import agreement_over_pairs, comparison_design
from helpers.map_store import load_maps, save_maps
from helpers.model_bootstrap import (
    PairValues,
    _pair_means,
    by_band,
    compare_to_control,
    difference_to_control,
    layers_off_zero,
    pair_values,
    parse_model_name,
    same_start,
    seed_image_mean,
    seed_table,
    seeds_of,
)

SEEDS = tuple(range(5))


def model_maps(seeds=SEEDS, kinds=("regular", "article"), n=12, seed=0):
    """Maps sharing an image's base pattern; ``article`` models add more noise to it."""
    rng = np.random.default_rng(seed)
    base = {"l1": rng.random((n, 6, 6)), "l2": rng.random((n, 3, 3))}
    noise = {"regular": 0.4, "article": 1.2, "forward": 0.6}
    return {
        f"{kind} s{s}": {layer: b + noise[kind] * rng.random(b.shape) for layer, b in base.items()}
        for kind in kinds
        for s in seeds
    }


def synthetic(sd_seed, rng, n=30, sd_image=0.05, cross=0.3, control=0.5):
    """Known agreements: comparison ``cross``, control ``control`` plus seed and image effects."""
    s = len(SEEDS)
    r, x, g = rng.normal(0, sd_seed, s), rng.normal(0, sd_seed, s), rng.normal(0, sd_image, n)
    v = cross + r[:, None, None] + x[None, :, None] + g + rng.normal(0, 0.05, (s, s, n))
    c = control + r[:, None, None] + r[None, :, None] + g + rng.normal(0, 0.05, (s, s, n))
    c = (c + c.transpose(1, 0, 2)) / 2
    return (
        {"l": PairValues("regular", "article", SEEDS, SEEDS, v)},
        {"l": PairValues("regular", "regular", SEEDS, SEEDS, c)},
    )


def test_model_names_and_seeds():
    assert parse_model_name("regular s3") == ("regular", 3)
    assert parse_model_name("scl exp s12") == ("scl exp", 12)
    with pytest.raises(ValueError, match="'<kind> s<seed>'"):
        parse_model_name("regular")
    assert seeds_of(["article s2", "regular s0", "article s0"], "article") == (0, 2)


def test_pair_values_holds_every_pair_computed_with_the_agreement_measures():
    maps = model_maps(seeds=(0, 1, 2), n=4)
    cross = pair_values(maps, "regular", "article")
    pv = cross["l1"]
    assert pv.values.shape == (3, 3, 4) and pv.n_images == 4 and list(cross) == ["l1", "l2"]
    want = rank_correlation(maps["regular s2"]["l1"], maps["article s0"]["l1"])
    np.testing.assert_allclose(pv.values[2, 0], want)
    np.testing.assert_allclose(
        pv.values[1, 1], rank_correlation(maps["regular s1"]["l1"], maps["article s1"]["l1"])
    )
    control = pair_values(maps, "regular", "regular", layers=["l2"])["l2"]
    assert np.isnan(control.values[[0, 1, 2], [0, 1, 2]]).all()  # no model against itself
    np.testing.assert_array_equal(control.values, control.values.transpose(1, 0, 2))
    iou = pair_values(maps, "regular", "article", "iou", fraction=0.3)["l1"]
    np.testing.assert_allclose(
        iou.values[0, 2], top_region_iou(maps["regular s0"]["l1"], maps["article s2"]["l1"], 0.3)
    )
    with pytest.raises(ValueError, match="metric must be one of"):
        pair_values(maps, "regular", "article", "pearson")
    with pytest.raises(ValueError, match="two seeds for a control"):
        pair_values(model_maps(seeds=(0,)), "regular", "regular")


def test_point_estimate_is_every_cross_seed_pair_minus_every_control_pair():
    maps = model_maps()
    design = comparison_design(SEEDS, "article")
    assert len(design["regular vs article"]) == 20
    assert len(design["regular vs regular (control)"]) == 10
    est = compare_to_control(maps, "article", n_boot=200)
    for layer in ("l1", "l2"):
        a = agreement_over_pairs(maps, design["regular vs article"])[layer]["spearman"].mean()
        c = agreement_over_pairs(maps, design["regular vs regular (control)"])[layer][
            "spearman"
        ].mean()
        e = est[layer]
        assert e.mean == pytest.approx(a - c) and (e.comparison, e.control) == pytest.approx((a, c))
        assert e.low <= e.mean <= e.high and e.n_seeds == {"regular": 5, "article": 5}
        assert e.n_images == 12 and e.n_boot == 200 and e.replicates.shape == (200,)
    assert est["l1"].high < 0  # noisier article maps agree less than two regular seeds do
    mean, low, high = est["l1"]
    assert est["l1"].as_estimate().n == 12 and (mean, low, high) == tuple(est["l1"].as_estimate())
    level = seed_image_mean(pair_values(maps, "regular", "article"), n_boot=200)["l1"]
    assert level.mean == pytest.approx(est["l1"].comparison) and math.isnan(level.control)


def test_pairs_of_a_seed_with_itself_never_enter():
    rng = np.random.default_rng(0)
    cross, control = synthetic(0.05, rng)
    v, c = cross["l"].values.copy(), control["l"].values.copy()
    idx = np.arange(5)
    v[idx, idx], c[idx, idx] = 100.0, 100.0  # same start, and a model against itself
    poisoned = difference_to_control(
        {"l": PairValues("regular", "article", SEEDS, SEEDS, v)},
        {"l": PairValues("regular", "regular", SEEDS, SEEDS, c)},
        n_boot=300,
    )["l"]
    clean = difference_to_control(cross, control, n_boot=300)["l"]
    assert (poisoned.mean, poisoned.low, poisoned.high) == pytest.approx(tuple(clean))
    assert np.nanmax(np.abs(poisoned.replicates)) < 1


def test_duplicated_seeds_weigh_as_pairs_of_draws():
    """Regular draws s0, s0, s1; article draws s1, s2, s2 (one image, a value per pair)."""
    v = np.arange(9.0).reshape(3, 3, 1)  # v[i, j] = 3 i + j
    pv = PairValues("regular", "article", (0, 1, 2), (0, 1, 2), v)
    wa, wb = np.array([[2.0, 1.0, 0.0]]), np.array([[0.0, 1.0, 2.0]])
    got = _pair_means(pv, wa, wb, np.zeros((1, 1), dtype=np.int64), same=False)
    # Pairs of draws with different seeds: (0,1) x2, (0,2) x4, (1,2) x2; (1,1) is same-start.
    want = (2 * 1 + 4 * 2 + 2 * 5) / 8
    assert got[0] == pytest.approx(want)
    control = PairValues("regular", "regular", (0, 1, 2), (0, 1, 2), v + v.transpose(1, 0, 2))
    got = _pair_means(control, wa, wa, np.zeros((1, 1), dtype=np.int64), same=False)
    assert got[0] == pytest.approx(4.0)  # only s0 with s1 (2 x 1 pairs); s0 with s0 is dropped
    same = _pair_means(pv, wa, wa, np.zeros((1, 1), dtype=np.int64), same=True)
    assert same[0] == pytest.approx((2 * 0 + 1 * 4) / 3)  # one same-start pair per draw


def test_interval_over_seeds_covers_the_truth_where_an_image_interval_does_not():
    """40 simulated studies, the true difference -0.2; seeds vary (sd 0.1) or do not."""
    covered, covered_images, widths = 0, 0, {0.0: [], 0.1: []}
    off_diagonal = ~np.eye(5, dtype=bool)
    for sd in widths:
        for k in range(40):
            cross, control = synthetic(sd, np.random.default_rng(k))
            est = difference_to_control(cross, control, n_boot=400, seed=k)["l"]
            widths[sd].append(est.high - est.low)
            if sd:
                covered += est.low <= -0.2 <= est.high
                per_image = [
                    {"l": {"spearman": p["l"].values[off_diagonal].mean(axis=0)}}
                    for p in (cross, control)
                ]
                images_only = paired_difference(per_image[0], per_image[1], n_boot=400, seed=k)["l"]
                covered_images += images_only.low <= -0.2 <= images_only.high
    assert covered >= 28  # near the nominal 95% (a percentile bootstrap on 5 seeds runs low)
    assert covered_images <= 10  # resampling images alone says nothing about other models
    assert np.mean(widths[0.1]) > 4 * np.mean(widths[0.0])  # wider when the seeds disagree


def test_same_start_pairs_are_their_own_row():
    rng = np.random.default_rng(1)
    n = 20
    v = 0.3 + rng.normal(0, 0.02, (5, 3, n))
    v[[0, 1, 2], [0, 1, 2]] = 0.9  # regular sK vs article sK start from the same weights
    cross = {"l": PairValues("regular", "article", SEEDS, (0, 1, 2), v)}
    row = same_start(cross, n_boot=300)["l"]
    assert row.mean == pytest.approx(0.9) and row.seeds == {
        "regular": (0, 1, 2),
        "article": (0, 1, 2),
    }
    gain = same_start(cross, minus_cross=True, n_boot=300)["l"]
    assert gain.mean == pytest.approx(0.6, abs=0.02) and gain.low > 0.5
    assert seed_image_mean(cross, n_boot=100)["l"].mean == pytest.approx(0.3, abs=0.01)
    with pytest.raises(ValueError, match="need two kinds"):
        same_start({"l": PairValues("regular", "regular", SEEDS, SEEDS, v[:, [0, 1, 2, 0, 1]])})
    with pytest.raises(ValueError, match="share seeds"):
        same_start({"l": PairValues("regular", "article", (0, 1), (2, 3), v[:2, :2])})


def test_undefined_replicates_are_counted_not_hidden():
    maps = model_maps(seeds=(0, 1))
    two = compare_to_control(maps, "article", n_boot=400)["l1"]
    assert 0.35 * 400 < two.n_undefined < 0.7 * 400  # all-s0 or all-s1 regular draws: no control
    five = compare_to_control(model_maps(), "article", n_boot=400)["l1"]
    assert five.n_undefined < 0.02 * 400
    one = pair_values(model_maps(seeds=(0,)), "regular", "article")
    with pytest.raises(ValueError, match="no pair with a defined value"):
        seed_image_mean(one)  # regular s0 vs article s0 is the only pair: same start
    with pytest.raises(ValueError, match="has seeds"):
        difference_to_control(one, pair_values(maps, "regular", "regular"))


def test_bands_pool_the_layers_draw_by_draw_and_layers_off_zero_counts():
    est = compare_to_control(model_maps(), "article", n_boot=300)
    band = by_band(est, {"all": ["l1", "l2"], "first": ["l1"]})
    assert band["all"].mean == pytest.approx((est["l1"].mean + est["l2"].mean) / 2)
    np.testing.assert_allclose(
        band["all"].replicates, (est["l1"].replicates + est["l2"].replicates) / 2
    )
    assert tuple(band["first"]) == pytest.approx(tuple(est["l1"]))
    found = layers_off_zero(est)
    assert (
        found["below"] == [layer for layer in est if est[layer].high < 0] and "l1" in found["below"]
    )
    assert found["above"] == []
    other = compare_to_control(model_maps(), "article", n_boot=100)
    with pytest.raises(ValueError, match="different bootstrap calls"):
        by_band({"l1": est["l1"], "l2": other["l2"]}, {"all": ["l1", "l2"]})
    table = seed_table({"regular vs article - control": est}, ["l1", "l2"]).splitlines()
    assert len(table) == 3 and "l1" in table[0]
    assert (
        table[1].startswith("regular vs article - control")
        and f"{est['l1'].mean:.2f} [" in table[1]
    )
    assert table[2] == "seeds per kind (regular: 5, article: 5); 12 images; 300 replicates"


def test_the_same_draws_serve_every_layer_and_repeat_with_the_seed():
    maps = model_maps()
    a = compare_to_control(maps, "article", n_boot=200, seed=3)
    b = compare_to_control(maps, "article", n_boot=200, seed=3)
    np.testing.assert_array_equal(a["l1"].replicates, b["l1"].replicates)
    c = compare_to_control(maps, "article", n_boot=200, seed=4)
    assert not np.array_equal(a["l1"].replicates, c["l1"].replicates)


# ------------------------------------------------------------------------- maps on disk


def test_saved_maps_round_trip_small_and_rank_preserving(tmp_path):
    rng = np.random.default_rng(5)
    maps = model_maps(seeds=(0, 1), kinds=("regular", "article", "forward"), n=6)
    maps["regular s0"]["l1"] = maps["regular s0"]["l1"] * 1e-7  # tiny raw Grad-CAM values
    maps["article s1"]["l2"][2] = 0.0  # a map the ReLU emptied stays constant
    devices = {name: "cpu a" if name.endswith("s0") else "gpu b" for name in maps}
    path = save_maps(
        tmp_path / "maps",
        maps,
        [3, 9, 4, 1, 7, 8],
        devices,
        labels=rng.integers(0, 3, 6),
        note="96 px, true class",
    )
    assert path == tmp_path / "maps.npz" and path.is_file()
    stored = load_maps(path)
    assert list(stored.maps) == list(maps) and list(stored.maps["forward s1"]) == ["l1", "l2"]
    assert stored.devices == devices and stored.note == "96 px, true class"
    np.testing.assert_array_equal(stored.image_indices, [3, 9, 4, 1, 7, 8])
    assert stored.labels is not None and stored.labels.shape == (6,)
    for name in maps:
        for layer, m in maps[name].items():
            got = stored.maps[name][layer]
            assert got.shape == m.shape and got.dtype == np.float32  # each layer's own size
            np.testing.assert_allclose(got, m, rtol=1e-3, atol=1e-3 * np.abs(m).max())
            live = m.reshape(len(m), -1).std(axis=1) > 0
            assert (rank_correlation(got, m)[live] > 0.999).all()
    assert (stored.maps["article s1"]["l2"][2] == 0).all()
    # The bootstrap gives the same answer from the file as from the maps.
    from_file = compare_to_control(stored.maps, "forward", n_boot=100)
    direct = compare_to_control(maps, "forward", n_boot=100)
    assert from_file["l1"].mean == pytest.approx(direct["l1"].mean, abs=1e-3)
    exact = load_maps(save_maps(tmp_path / "exact.npz", maps, np.arange(6), "cpu", dtype="float32"))
    np.testing.assert_allclose(exact.maps["regular s0"]["l1"], maps["regular s0"]["l1"], rtol=1e-6)
    assert set(exact.devices.values()) == {"cpu"} and exact.labels is None
    # Half precision: about half the float32 file, at each layer's own size.
    big = {"regular s0": {"l": rng.random((40, 24, 24))}}
    half = save_maps(tmp_path / "half.npz", big, np.arange(40), "cpu").stat().st_size
    full = save_maps(tmp_path / "full.npz", big, np.arange(40), "cpu", dtype="float32")
    assert half < 0.6 * full.stat().st_size


def test_save_maps_refuses_what_it_could_not_read_back(tmp_path):
    maps = model_maps(seeds=(0,), n=3)
    with pytest.raises(ValueError, match="N = 4 image indices"):
        save_maps(tmp_path / "m", maps, np.arange(4), "cpu")
    with pytest.raises(ValueError, match="devices must name every model"):
        save_maps(tmp_path / "m", maps, np.arange(3), {"regular s0": "cpu"})
    with pytest.raises(ValueError, match="has layers"):
        save_maps(
            tmp_path / "m",
            {**maps, "article s0": {"l1": maps["article s0"]["l1"]}},
            np.arange(3),
            "cpu",
        )
    with pytest.raises(ValueError, match="dtype must be"):
        save_maps(tmp_path / "m", maps, np.arange(3), "cpu", dtype="int8")
