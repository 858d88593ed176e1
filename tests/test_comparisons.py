"""Chapter 6's comparison design: which pairs, which images, and the table of estimates."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.agreement import summarize_by_layer
from helpers.comparisons import (
    agreement_over_pairs,
    agreement_table,
    comparison_design,
    mean_over_pairs,
)


def test_comparison_design_pairs_the_kinds_across_seeds_only():
    design = comparison_design([0, 1], "article")
    assert design["regular vs article"] == [
        ("regular s0", "article s1"),
        ("regular s1", "article s0"),
    ]
    assert design["regular vs regular (control)"] == [("regular s0", "regular s1")]
    assert design["article vs article (control)"] == [("article s0", "article s1")]
    assert design["same start: regular vs article"] == [
        ("regular s0", "article s0"),
        ("regular s1", "article s1"),
    ]
    three = comparison_design([0, 1, 2])
    assert len(three["regular vs complementary"]) == 6
    assert len(three["complementary vs complementary (control)"]) == 3
    for a, b in three["regular vs complementary"]:
        assert a[-1] != b[-1]
    with pytest.raises(ValueError, match="at least two seeds"):
        comparison_design([0, 0])
    with pytest.raises(ValueError, match="not 'regular'"):
        comparison_design([0, 1], "regular")


def test_mean_over_pairs_keeps_one_value_per_image():
    a = {"l": {"spearman": np.array([0.2, np.nan, 0.5]), "iou": np.array([0.1, 0.2, 0.3])}}
    b = {"l": {"spearman": np.array([0.4, 0.6, np.nan]), "iou": np.array([0.3, 0.2, 0.1])}}
    c = {"l": {"spearman": np.array([np.nan, np.nan, np.nan]), "iou": np.zeros(3)}}
    out = mean_over_pairs([a, b, c])
    np.testing.assert_allclose(out["l"]["spearman"], [0.3, 0.6, 0.5])
    np.testing.assert_allclose(out["l"]["iou"], [0.4 / 3, 0.4 / 3, 0.4 / 3])
    assert np.isnan(mean_over_pairs([c])["l"]["spearman"]).all()
    with pytest.raises(ValueError, match="at least one pair"):
        mean_over_pairs([])


def _maps(seed: int, n: int = 5) -> dict[str, np.ndarray]:
    return {"l": np.random.default_rng(seed).random((n, 4, 4))}


def test_agreement_over_pairs_averages_pairs_and_keeps_only_shared_images():
    base = _maps(0)
    maps = {"r s0": base, "r s1": {"l": base["l"] ** 2}, "a s0": {"l": -base["l"] + 1}}
    same = agreement_over_pairs(maps, [("r s0", "r s1")])
    np.testing.assert_allclose(same["l"]["spearman"], 1.0)  # a power keeps the order
    both = agreement_over_pairs(maps, [("r s0", "r s1"), ("r s0", "a s0")])
    np.testing.assert_allclose(both["l"]["spearman"], 0.0, atol=1e-12)  # mean of 1 and -1
    keep = {
        "r s0": np.array([1, 1, 1, 0, 0], bool),
        "r s1": np.array([1, 1, 0, 1, 0], bool),
        "a s0": np.array([0, 1, 1, 1, 1], bool),
    }
    kept = agreement_over_pairs(maps, [("r s0", "r s1"), ("r s0", "a s0")], keep)
    rho = kept["l"]["spearman"]
    np.testing.assert_allclose(rho[:3], [1.0, 0.0, -1.0], atol=1e-12)  # who keeps which image
    assert np.isnan(rho[3:]).all()  # no pair keeps images 3 and 4
    with pytest.raises(ValueError, match="no maps for"):
        agreement_over_pairs(maps, [("r s0", "f s9")])


def test_agreement_table_has_a_row_per_comparison_and_counts_dropped_images():
    values = {"l": {"spearman": np.array([0.1, 0.3, np.nan, 0.5]), "iou": np.zeros(4)}}
    full = {"l": {"spearman": np.array([0.2, 0.2, 0.2, 0.2]), "iou": np.zeros(4)}}
    table = agreement_table(
        {"a vs b": summarize_by_layer(values, n_boot=100), "control": summarize_by_layer(full)},
        {"deep": "l"},
    )
    head, first, second = table.splitlines()
    assert "deep" in head
    assert first.startswith("a vs b") and "0.30 [" in first and "n=3" in first
    assert second.startswith("control") and "0.20 [0.20, 0.20]" in second and "n=" not in second
