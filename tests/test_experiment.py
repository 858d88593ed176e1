"""helpers.experiment: run names, labels that hide the truth, balanced CAM subsets, sweep tables."""

import numpy as np
import pytest

from helpers.experiment import (
    cam_subset,
    format_summary,
    load_sweep,
    run_name,
    summarise,
    sweep_findings,
    sweep_table,
)
from helpers.results import record


def test_run_names_are_shared_by_chapters_and_sweep():
    assert run_name("crossentropy") == "regular"
    assert run_name("article") == "complementary-article"
    assert run_name("nn", max_per_class=10) == "complementary-nn-cap10"


def test_cam_subset_is_balanced_and_sorted():
    y = np.array([0] * 10 + [1] * 10 + [2] * 10)
    idx = cam_subset(y, 7)
    assert len(idx) == 7 and np.all(np.diff(idx) > 0)
    assert sorted(np.bincount(y[idx]).tolist()) == [2, 2, 3]
    assert np.array_equal(cam_subset(y, None), np.arange(30))
    assert np.array_equal(cam_subset(y, 100), np.arange(30))


def test_sweep_table_from_the_results_store(tmp_path):
    assert "No sweep results" in sweep_table([])
    for seed, acc in ((0, 0.8), (1, 0.9)):
        row = {
            "loss": "article",
            "seed": seed,
            "true_accuracy": acc,
            "pseudo_accuracy": 0.9,
            "epochs": 5,
            "wall_time_s": 10.0,
        }
        record(
            "complementary_sweep",
            f"article/seed{seed}",
            row,
            profile="laptop",
            backend="tensorflow",
            seed=seed,
            directory=tmp_path,
            device="CPU",
        )
    record(
        "complementary_sweep",
        "article/summary",
        {"n": 2},
        profile="laptop",
        backend="tensorflow",
        directory=tmp_path,
    )
    rows = load_sweep("laptop", tmp_path)
    assert [r["seed"] for r in rows] == [0, 1]
    table = sweep_table(rows)
    assert "article" in table and "0.850 ± 0.071" in table and "CPU" in table
    assert format_summary(summarise(rows)).count("\n") == 1


def _row(loss, seed, acc, epochs=5):
    return {
        "loss": loss,
        "seed": seed,
        "true_accuracy": acc,
        "pseudo_accuracy": 0.5 + acc / 2,
        "epochs": epochs,
        "wall_time_s": 1.0,
    }


def test_sweep_findings_ranks_losses_and_finds_identical_runs():
    rows = [
        _row("crossentropy", 0, 0.95),
        _row("crossentropy", 1, 0.93),
        _row("article", 0, 0.70),
        _row("article", 1, 0.60),
        _row("forward", 0, 0.90, 21),
        _row("forward", 1, 0.80, 9),
        _row("scl_nl", 0, 0.90, 21),
        _row("scl_nl", 1, 0.80, 9),
        _row("pc", 0, 0.90, 21),
        _row("pc", 1, 0.81, 9),
    ]
    found = sweep_findings(rows)
    assert found["min_seeds"] == 2
    assert [loss for loss, _, _ in found["ranking"]] == ["pc", "forward", "scl_nl", "article"]
    assert found["best_loss"] == "pc"
    assert found["ranking"][0][1] == pytest.approx(0.855)
    assert found["reference"]["true_accuracy_mean"] == pytest.approx(0.94)
    assert found["article"]["true_accuracy_std"] == pytest.approx(np.std([0.7, 0.6], ddof=1))
    # pc matches forward on seed 0 only, so only forward/scl_nl count as identical.
    assert found["identical"] == [("forward", "scl_nl")]
    assert found["above_article"] == ["pc", "forward", "scl_nl"]
    assert found["below_article"] == []


def test_sweep_findings_needs_runs_and_counts_the_thinnest_loss():
    with pytest.raises(ValueError, match="sweep_losses"):
        sweep_findings([])
    found = sweep_findings([_row("article", 0, 0.7), _row("article", 1, 0.6), _row("nn", 0, 0.5)])
    assert found["min_seeds"] == 1 and found["reference"] is None
    assert found["identical"] == []
    assert found["above_article"] == [] and found["below_article"] == ["nn"]
    without_article = sweep_findings([_row("nn", 0, 0.5), _row("pc", 0, 0.8)])
    assert without_article["article"] is None and without_article["above_article"] == []
