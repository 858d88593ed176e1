"""Agreement metrics and intervals on hand-made maps whose answers are known."""

import math

import numpy as np
import pytest
from scipy import stats

from helpers.agreement import (
    Estimate,
    agreement_by_layer,
    bootstrap_ci,
    format_mean_ci,
    mean_ci,
    rank_correlation,
    summarize_by_layer,
    top_region,
    top_region_iou,
)


def random_maps(n=3, h=6, w=5, seed=0):
    return np.random.default_rng(seed).random((n, h, w))


def test_identical_maps_agree_perfectly():
    a = random_maps()
    np.testing.assert_allclose(rank_correlation(a, a), 1.0)
    np.testing.assert_allclose(top_region_iou(a, a), 1.0)


def test_reversed_ranking_gives_minus_one():
    a = random_maps()
    np.testing.assert_allclose(rank_correlation(a, -a), -1.0)
    # Any strictly decreasing transform reverses the ranking, not only negation.
    np.testing.assert_allclose(rank_correlation(a, np.exp(-3 * a)), -1.0)


def test_rank_correlation_ignores_monotone_rescaling():
    a = random_maps()
    np.testing.assert_allclose(rank_correlation(a, a**3 * 10 + 2), 1.0)


def test_rank_correlation_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(4, 5, 5)).astype(float)  # many ties
    b = rng.integers(0, 4, size=(4, 5, 5)).astype(float)
    expected = [stats.spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(rank_correlation(a, b), expected, atol=1e-12)


def test_constant_map_is_undefined_without_warnings():
    a = random_maps(n=2)
    b = a.copy()
    b[1] = 0.0  # a Grad-CAM map that the ReLU emptied
    with np.errstate(all="raise"):
        rho = rank_correlation(a, b)
        iou = top_region_iou(a, b)
    assert rho[0] == pytest.approx(1.0) and math.isnan(rho[1])
    assert iou[0] == pytest.approx(1.0) and math.isnan(iou[1])
    assert rank_correlation(a, b, undefined=0.0)[1] == 0.0
    assert top_region_iou(a, b, undefined=0.0)[1] == 0.0


def test_disjoint_top_regions_give_iou_zero():
    a = np.zeros((1, 10, 10))
    b = np.zeros((1, 10, 10))
    a[0, :2, :] = 1.0  # top 20% = first two rows
    b[0, -2:, :] = 1.0  # top 20% = last two rows
    assert top_region_iou(a, b)[0] == 0.0


def test_half_overlapping_top_regions():
    a = np.zeros((10, 10))
    b = np.zeros((10, 10))
    a[:2, :] = 1.0
    b[1:3, :] = 1.0  # shares one row of ten pixels out of thirty in the union
    assert top_region_iou(a, b)[0] == pytest.approx(10 / 30)


def test_top_region_has_the_requested_size_without_ties():
    m = random_maps(n=4, h=10, w=10, seed=3)
    mask = top_region(m, 0.2)
    assert mask.shape == m.shape
    assert (mask.sum(axis=(1, 2)) == 20).all()
    for img, msk in zip(m, mask, strict=True):
        assert img[msk].min() > img[~msk].max()


def test_top_region_ties_are_decided_by_size_not_position():
    m = np.zeros((10, 10))
    m[4:7, 4:7] = 1.0  # 9 hot pixels, 91 tied zeros at the 20% threshold
    assert (top_region(m, 0.2) == (m > 0)).all()  # never an arbitrary corner of zeros
    # 18 scattered hot pixels and 82 zeros: the region is the 18, not 18 plus 2 zeros.
    m2 = np.zeros((10, 10))
    m2.flat[:90:5] = 2.0
    assert (top_region(m2, 0.2) == (m2 > 0)).all()
    # A flipped copy gets the mirrored region: position plays no part.
    assert (top_region(m[::-1, ::-1], 0.2) == top_region(m, 0.2)[::-1, ::-1]).all()


def test_top_region_tie_group_straddling_k_joins_when_closer():
    m = np.arange(100, dtype=float).reshape(10, 10)
    m[m >= 78] = 100.0  # 22 pixels tie at the top: closer to k=20 than 0
    assert top_region(m, 0.2).sum() == 22
    m = np.arange(100, dtype=float).reshape(10, 10)
    m[(m >= 70) & (m < 85)] = 70.0  # 15 above, 15 tied: 30 is further from 20 than 15
    assert top_region(m, 0.2).sum() == 15


def test_constant_map_has_no_top_region():
    assert not top_region(np.full((1, 4, 4), 0.3)).any()


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="differ in shape"):
        rank_correlation(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        rank_correlation(np.full((1, 2, 2), np.nan), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="fraction"):
        top_region_iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), fraction=1.5)


def test_agreement_by_layer_keeps_layers_and_images():
    a = {"block2_add": random_maps(seed=0), "block13_add": random_maps(seed=1)}
    b = {"block13_add": -a["block13_add"], "block2_add": a["block2_add"]}
    table = agreement_by_layer(a, b)
    assert list(table) == ["block2_add", "block13_add"]
    np.testing.assert_allclose(table["block2_add"]["spearman"], 1.0)
    np.testing.assert_allclose(table["block13_add"]["spearman"], -1.0)
    assert table["block2_add"]["iou"].shape == (3,)
    with pytest.raises(ValueError, match="different layers"):
        agreement_by_layer(a, {"block2_add": a["block2_add"]})


def test_bootstrap_interval_contains_the_mean_and_is_reproducible():
    v = np.random.default_rng(5).normal(0.4, 0.2, size=40)
    est = bootstrap_ci(v, n_boot=2000, seed=7)
    mean, low, high = est
    assert low < mean < high
    assert mean == pytest.approx(v.mean())
    assert tuple(bootstrap_ci(v, n_boot=2000, seed=7)) == (mean, low, high)
    assert tuple(bootstrap_ci(v, n_boot=2000, seed=8)) != (mean, low, high)
    # Width close to the normal-theory 95% interval of the mean.
    assert high - low == pytest.approx(2 * 1.96 * v.std(ddof=1) / np.sqrt(40), rel=0.15)


def test_bootstrap_drops_nans_and_counts_them():
    est = bootstrap_ci([0.2, np.nan, 0.4, 0.6, np.nan])
    assert (est.n, est.n_dropped) == (3, 2)
    assert est.mean == pytest.approx(0.4)
    single = bootstrap_ci([0.5, np.nan])
    assert single.mean == 0.5 and math.isnan(single.low) and math.isnan(single.high)
    assert math.isnan(bootstrap_ci([np.nan]).mean)


def test_mean_ci_t_interval_and_single_seed():
    est = mean_ci([0.80, 0.84, 0.82])
    half = stats.t.ppf(0.975, 2) * 0.02 / np.sqrt(3)
    assert (est.low, est.high) == pytest.approx((0.82 - half, 0.82 + half))
    one = mean_ci([0.9])
    assert one.mean == 0.9 and one.n == 1 and math.isnan(one.low)
    assert "no interval" in format_mean_ci(one)


def test_format_mean_ci():
    est = Estimate(0.8123, 0.75, 0.86, n=12, n_dropped=0, ci=0.95, method="bootstrap")
    assert format_mean_ci(est) == "0.81 (95% CI 0.75 to 0.86, n=12)"
    assert format_mean_ci(est, 1, percent=True) == "81.2% (95% CI 75.0% to 86.0%, n=12)"
    dropped = Estimate(0.5, 0.4, 0.6, n=8, n_dropped=2, ci=0.9, method="bootstrap")
    assert format_mean_ci(dropped).endswith("n=8, 2 undefined left out)")


def test_interval_input_errors():
    with pytest.raises(ValueError, match="no values"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="ci must be"):
        mean_ci([1.0, 2.0], ci=95)


def test_summarize_by_layer():
    table = {"b2": {"spearman": np.array([0.1, 0.3, np.nan]), "iou": np.array([0.5, 0.7])}}
    out = summarize_by_layer(table, n_boot=200)
    assert out["b2"]["spearman"].mean == pytest.approx(0.2)
    assert out["b2"]["spearman"].n_dropped == 1
    assert out["b2"]["iou"].n == 2


def test_paired_difference_sees_a_consistent_gap():
    from helpers.agreement import paired_difference

    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.9, 40)
    a = {"l1": {"spearman": base - 0.2}, "l2": {"spearman": base}}
    b = {"l1": {"spearman": base}, "l2": {"spearman": base}}
    diff = paired_difference(a, b, seed=0)
    assert diff["l1"].high < 0 and abs(diff["l1"].mean + 0.2) < 1e-9
    assert diff["l2"].low <= 0 <= diff["l2"].high
    with pytest.raises(ValueError, match="same images"):
        paired_difference(a, {"l1": {"spearman": base[:5]}, "l2": {"spearman": base}})


def test_layer_bands_collects_means_and_intervals_in_layer_order():
    from helpers.agreement import layer_bands, summarize_by_layer

    per_image = {
        "b": {"spearman": np.array([0.2, 0.4]), "iou": np.array([0.1, 0.1])},
        "a": {"spearman": np.array([0.6, 0.8]), "iou": np.array([0.3, 0.5])},
    }
    bands = layer_bands({"pair": summarize_by_layer(per_image, n_boot=200)}, ["a", "b"])
    mean, low, high = bands["pair"]
    np.testing.assert_allclose(mean, [0.7, 0.3])
    assert np.all(low <= mean) and np.all(mean <= high)


def test_mean_ci_can_clip_to_the_range_of_an_accuracy():
    from helpers.agreement import mean_ci

    free = mean_ci([0.93, 0.97])
    clipped = mean_ci([0.93, 0.97], bounds=(0.0, 1.0))
    assert free.high > 1.0 and clipped.high == 1.0 and clipped.low == free.low
