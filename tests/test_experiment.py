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


def test_the_class_list_is_part_of_a_runs_identity(tmp_path, monkeypatch):
    from PIL import Image

    from helpers.experiment import classes_tag, prepare_experiment, training_labels
    from helpers.profiles import PROFILES

    root = tmp_path / "101_ObjectCategories"
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"image_{i:04d}.jpg")
    monkeypatch.setenv("CALTECH101_DIR", str(root))
    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "cache"))
    exp = prepare_experiment(PROFILES["smoke"], classes=("cats", "dogs"))
    assert exp.dataset.class_names == ("cats", "dogs") and exp.num_classes == 2
    assert len(exp.dataset.y_train) + len(exp.dataset.y_test) == 20
    assert len(exp.ybar_test) == len(exp.dataset.y_test)
    # With two classes a complementary label is the other class: it determines the truth.
    y = exp.dataset.y_train
    assert np.array_equal(training_labels(exp, "article", 0), 1 - y)

    assert classes_tag(("airplanes", "watch", "Leopards")) == ""
    assert run_name("article", classes=("cats", "dogs")) == "complementary-article-cats-dogs"
    four = ("airplanes", "watch", "Leopards", "Motorbikes")
    assert run_name("crossentropy", classes=four) != run_name("crossentropy")
    assert run_name("crossentropy", classes=four) == "regular-airplanes-watch-leopards-motorbikes"


def test_load_sweep_never_mixes_precisions_classes_or_overrides(tmp_path):
    base = {"loss": "article", "true_accuracy": 0.7, "pseudo_accuracy": 0.8, "epochs": 9,
            "wall_time_s": 5.0}  # fmt: skip
    record("complementary_sweep", "article/seed0", {**base, "seed": 0}, profile="laptop",
           directory=tmp_path)  # fmt: skip
    record("complementary_sweep", "article/seed0/mixed_bfloat16",
           {**base, "seed": 0, "precision": "mixed_bfloat16"}, profile="laptop",
           directory=tmp_path)  # fmt: skip
    record("complementary_sweep", "article/seed1/image_size160",
           {**base, "seed": 1, "overrides": {"image_size": 160}}, profile="laptop",
           directory=tmp_path)  # fmt: skip
    assert [r["seed"] for r in load_sweep("laptop", tmp_path)] == [0]
    assert load_sweep("laptop", tmp_path)[0].get("precision") is None  # an older row: float32
    bf16 = load_sweep("laptop", tmp_path, precision="mixed_bfloat16")
    assert [r["precision"] for r in bf16] == ["mixed_bfloat16"]
    arm = load_sweep("laptop", tmp_path, overrides={"image_size": 160})
    assert [r["seed"] for r in arm] == [1]
    assert load_sweep("laptop", tmp_path, classes=("a", "b")) == []


def test_select_by_validation_never_looks_at_the_test_set():
    from helpers.experiment import select_by_validation, tied_with

    def row(loss, seed, val, test, best=2):
        history = {"val_pseudo_accuracy": [0.1, val, 0.0], "val_loss": [1.0, 1 - val, 2.0]}
        return {"loss": loss, "seed": seed, "true_accuracy": test, "best_epoch": best,
                "history": history}  # fmt: skip

    rows = [
        row("crossentropy", 0, 0.99, 0.99),
        row("article", 0, 0.9, 0.5),  # best on validation, worst on test
        row("article", 1, 0.8, 0.5),
        row("forward", 0, 0.7, 0.95),
    ]
    loss, means = select_by_validation(rows)
    assert loss == "article" and means == pytest.approx({"article": 0.85, "forward": 0.7})
    assert select_by_validation(rows, "val_loss")[0] == "article"
    assert select_by_validation([row("nn", 0, 0.4, 0.4, best=1)])[1] == {"nn": 0.1}
    # A tie up to rounding (two means of thirds) goes to the steadier loss, not to the noise.
    tie = [row("forward", 0, 0.91176, 0.9), row("forward", 1, 0.93137, 0.9),
           row("forward", 2, 0.98039, 0.9), row("scl_exp", 0, 0.93137, 0.8),
           row("scl_exp", 1, 0.98039, 0.8), row("scl_exp", 2, 0.91176, 0.8),
           row("pc", 0, 0.93137, 0.8), row("pc", 1, 0.93137, 0.8), row("pc", 2, 0.96078, 0.8)]  # fmt: skip
    assert select_by_validation(tie)[0] == "pc"  # same mean as the others, smallest spread
    assert select_by_validation(tie[:6])[0] == "forward"  # same spread too: by name
    means = select_by_validation(tie)[1]
    assert tied_with(means, means["pc"]) == ["forward", "scl_exp", "pc"]
    assert tied_with({"a": 0.5, "b": 0.5 + 1e-6}, 0.5) == ["a"]
    with pytest.raises(ValueError, match="has no 'val_pseudo_accuracy' history"):
        select_by_validation([{"loss": "pc", "seed": 0, "best_epoch": 1}])
    with pytest.raises(ValueError, match="no complementary runs"):
        select_by_validation(rows[:1])
