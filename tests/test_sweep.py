"""Tests for scripts/sweep_losses.py: real smoke runs of one loss and one seed (of a shallower
Xception, see ``shallow_smoke``), and the queue's parts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.experiment import load_sweep, prepare_experiment, training_labels
from helpers.gap import Arm, format_ablation, gather_arms
from helpers.profiles import get_profile
from helpers.results import load_results, record
from helpers.runs import parse_runs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sweep_losses.py"
TINY = ["--profile", "smoke", "--seeds", "0", "--max-per-class", "10", "--quiet"]


def load_script():
    spec = importlib.util.spec_from_file_location("sweep_losses", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_losses"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


sweep = load_script()


@pytest.fixture(autouse=True)
def shallow_smoke(monkeypatch):
    """The queue's machinery does not depend on the network's depth: its runs train an
    Xception without middle-flow blocks, a fraction of the smoke model's time."""
    from dataclasses import replace

    from helpers import profiles

    shallow = replace(profiles.PROFILES["smoke"], middle_blocks=0)
    monkeypatch.setitem(profiles.PROFILES, "smoke", shallow)


def test_summarise_mean_and_sample_std():
    rows = [
        {
            "loss": "nn",
            "seed": s,
            "true_accuracy": a,
            "pseudo_accuracy": p,
            "epochs": e,
            "wall_time_s": 10.0,
        }
        for s, a, p, e in [(0, 0.5, 0.7, 2), (1, 0.7, 0.8, 4), (2, 0.9, 0.9, 6)]
    ]
    rows.append({**rows[0], "loss": "pc", "true_accuracy": 0.4})
    summary = sweep.summarise(rows)
    assert list(summary) == ["nn", "pc"]
    assert summary["nn"]["seeds"] == [0, 1, 2]
    assert summary["nn"]["true_accuracy_mean"] == pytest.approx(0.7)
    assert summary["nn"]["true_accuracy_std"] == pytest.approx(0.2)  # ddof=1
    assert summary["nn"]["epochs_mean"] == pytest.approx(4.0)
    assert summary["pc"]["true_accuracy_std"] == 0.0
    table = sweep.format_summary(summary)
    assert "0.700 ± 0.200" in table and table.count("\n") == 2


def test_complementary_training_labels_hide_the_true_ones():
    data = prepare_experiment(get_profile("smoke"), max_per_class=10)
    y = data.dataset.y_train
    for seed in (0, 1):
        ybar = training_labels(data, "article", seed)
        assert np.all(ybar != y)
    np.testing.assert_array_equal(training_labels(data, "crossentropy", 0), y)
    assert np.all(data.ybar_test != data.dataset.y_test)
    assert np.intersect1d(data.idx_fit, data.idx_val).size == 0
    assert len(data.idx_fit) + len(data.idx_val) == len(y)


def test_unknown_loss_is_rejected():
    with pytest.raises(SystemExit):
        sweep.parse_args(["--losses", "hinge"])


def test_smoke_queue_records_real_runs_with_overrides_and_a_log(tmp_path, capsys, monkeypatch):
    import helpers.training as training

    seen = []
    real_train_model = training.train_model

    def spy(name, x_train, y_train, x_val, y_val, **kwargs):
        seen.append((x_train, y_train, x_val, y_val))
        return real_train_model(name, x_train, y_train, x_val, y_val, **kwargs)

    monkeypatch.setattr(training, "train_model", spy)
    # A fresh artifacts folder: the runs really train, and no stale saved run is reused.
    monkeypatch.setenv("BOOK_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    runs = tmp_path / "runs.txt"
    runs.write_text(
        "# the default run, then an arm\n"
        "loss=article seed=0\n"
        "loss=article seed=0 max_train_images=16 patience=2  # fewer images, more patience\n"
    )
    log = tmp_path / "queue.log"
    argv = ["--profile", "smoke", "--max-per-class", "10", "--runs", str(runs), "--log", str(log)]
    assert sweep.main([*argv, "--results-dir", str(tmp_path)]) == 0

    # Neither the training nor the validation labels may be the true ones.
    data = prepare_experiment(get_profile("smoke"), max_per_class=10)
    (_, y_fit, _, y_val) = seen[0]
    assert np.all(y_fit != data.dataset.y_train[data.idx_fit])
    assert np.all(y_val != data.dataset.y_train[data.idx_val])

    stored = load_results("smoke", tmp_path)[sweep.CHAPTER]
    row = stored["article/seed0"]
    assert row["seed"] == 0 and row["profile"] == "smoke"
    value = row["value"]
    assert 0.0 <= value["true_accuracy"] <= 1.0
    assert 0.0 <= value["pseudo_accuracy"] <= 1.0
    assert 1 <= value["epochs"] <= get_profile("smoke").max_epochs
    assert value["test_images"] == len(data.dataset.y_test)
    assert value["overrides"] == {} and value["precision"] in ("float32", "mixed_bfloat16")
    assert stored["article/summary"]["value"]["n"] == 1
    arm = stored["article/seed0/max_train_images16-patience2"]["value"]
    assert arm["overrides"] == {"max_train_images": 16, "patience": 2} and arm["epochs"] == 1
    assert "article/summary/max_train_images16-patience2" in stored
    # The arm is a run of its own in the artifacts too.
    folder = tmp_path / "artifacts" / "smoke" / f"tensorflow-{value['precision']}"
    assert sorted(p.name for p in folder.iterdir() if p.suffix != ".lock") == [
        "complementary-article-cap10-max_train_images16-patience2-seed0",
        "complementary-article-cap10-seed0",
    ]

    text = log.read_text()
    assert text == capsys.readouterr().out  # the log holds everything printed
    assert "run 1/2: article seed 0 (2 left)" in text
    assert "run 2/2: article seed 0 max_train_images=16 patience=2 (1 left, about" in text
    assert text.count("epoch   1/") == 2 and "epoch   1/1 " in text  # one line per epoch
    assert "article      seed 0: true acc" in text and "± 0.000" in text
    assert "(loaded)" not in text


# Runs in a child process where importing TensorFlow fails, as on a GPU node with JAX only.
NO_TENSORFLOW_RUN = """
import importlib.abc, importlib.util, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, NoTensorFlow())
import dataclasses
from helpers import profiles  # as the shallow_smoke fixture does in this process
profiles.PROFILES["smoke"] = dataclasses.replace(profiles.PROFILES["smoke"], middle_blocks=0)
spec = importlib.util.spec_from_file_location("sweep", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["sweep"] = module
spec.loader.exec_module(module)
status = module.main(json.loads(sys.argv[2]))
print(json.dumps({"status": status, "tensorflow": "tensorflow" in sys.modules}))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_sweep_runs_on_jax_without_tensorflow(tmp_path):
    argv = [*TINY, "--losses", "scl_nl", "--results-dir", str(tmp_path)]
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "BOOK_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW_RUN, str(SCRIPT), json.dumps(argv)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"status": 0, "tensorflow": False}
    entry = load_results("smoke", tmp_path)[sweep.CHAPTER]["scl_nl/seed0"]
    assert entry["backend"] == "jax"
    assert 0.0 <= entry["value"]["true_accuracy"] <= 1.0


def test_a_recorded_run_without_its_weights_is_skipped_not_replaced(tmp_path, capsys, monkeypatch):
    import helpers.training as training

    class Trained(Exception):
        pass

    def no_training(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(training, "train_model", no_training)
    monkeypatch.setenv("BOOK_ARTIFACTS_DIR", str(tmp_path / "artifacts"))  # a new machine
    row = {"loss": "article", "seed": 0, "true_accuracy": 0.8, "finished": True}
    record(sweep.CHAPTER, "article/seed0", row, profile="smoke", backend="tensorflow",
           directory=tmp_path, device="another CPU")  # fmt: skip
    before = (tmp_path / "smoke.json").read_bytes()
    argv = ["--profile", "smoke", "--losses", "article", "--seeds", "0", "--precision", "float32"]
    assert sweep.main([*argv, "--results-dir", str(tmp_path)]) == 0
    assert "(another CPU), but its weights are not on this machine: skipped" in (
        capsys.readouterr().out
    )
    assert (tmp_path / "smoke.json").read_bytes() == before  # the recorded run stays
    with pytest.raises(Trained):  # on purpose: --retrain trains it again
        sweep.main([*argv, "--results-dir", str(tmp_path), "--retrain"])
    row["finished"] = False  # an unfinished run is trained on (from scratch without weights)
    record(sweep.CHAPTER, "article/seed0", row, profile="smoke", backend="tensorflow",
           directory=tmp_path)  # fmt: skip
    with pytest.raises(Trained):
        sweep.main([*argv, "--results-dir", str(tmp_path)])


def test_a_bad_queue_fails_before_any_training(tmp_path, capsys):
    runs = tmp_path / "runs.txt"
    runs.write_text("loss=nn seed=0\nloss=nn seed=1 learnin_rate=1e-4\n")
    assert sweep.main(["--profile", "smoke", "--runs", str(runs), "--quiet"]) == 2
    assert "learnin_rate" in capsys.readouterr().err
    runs.write_text("loss=hinge seed=0\n")
    assert sweep.main(["--profile", "smoke", "--runs", str(runs), "--quiet"]) == 2
    assert "Unknown loss 'hinge'" in capsys.readouterr().err


def test_a_time_budget_leaves_a_run_unfinished_and_the_same_queue_finishes_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("BOOK_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    specs = parse_runs(
        "loss=article seed=0 checkpoint=true max_epochs=2 patience=2\nloss=nn seed=0\n"
    )
    profile = get_profile("smoke")
    # The queue's clock reads 0 and the deadline is 1: the first run starts, and its first
    # epoch ends (on the real clock, which the training sees) past the deadline.
    monkeypatch.setattr(sweep, "time", SimpleNamespace(time=lambda: 0.0, perf_counter=time.perf_counter))  # fmt: skip
    rows = sweep.run_queue(
        profile, specs, results_dir=str(tmp_path), max_per_class=10, deadline=1.0
    )
    out = capsys.readouterr().out
    assert len(rows) == 1 and rows[0]["finished"] is False and rows[0]["epochs"] == 1
    assert "stopped at the deadline after epoch 1 of at most 2" in out
    assert "(unfinished: best epoch so far)" in out and "time is up: 1 runs not started" in out

    stored = load_results("smoke", tmp_path)[sweep.CHAPTER]
    (key,) = stored  # recorded, and no summary of an unfinished run
    value = stored[key]["value"]
    assert value["finished"] is False and 0.0 <= value["true_accuracy"] <= 1.0
    assert load_sweep("smoke", tmp_path, overrides=value["overrides"]) == []
    (arm,) = gather_arms("smoke", tmp_path, [Arm("budget", "test", overrides=value["overrides"])])
    assert arm.n == 0 and arm.unfinished[0].epochs == 1 and arm.unfinished[0].max_epochs == 2
    assert "stopped after 1 of at most 2 epochs" in format_ablation([arm])
    run = tmp_path / "artifacts" / "smoke" / f"tensorflow-{value['precision']}"
    # Only the checkpoint, no finished run.
    assert [p.name for p in run.iterdir() if p.suffix != ".lock"] == [
        ".complementary-article-cap10-max_epochs2-patience2-seed0.partial"
    ]

    # A seed an earlier queue recorded belongs in the summary the next queue writes.
    earlier = {**value, "seed": 5, "finished": True, "true_accuracy": 0.5}
    record(sweep.CHAPTER, key.replace("seed0", "seed5"), earlier, profile="smoke",
           directory=tmp_path)  # fmt: skip
    monkeypatch.setattr(sweep, "time", time)
    (row,) = sweep.run_queue(profile, specs[:1], results_dir=str(tmp_path), max_per_class=10)
    assert "resuming after epoch 1" in capsys.readouterr().out
    assert row["finished"] is True and row["epochs"] == 2
    stored = load_results("smoke", tmp_path)[sweep.CHAPTER]
    assert stored[key]["value"]["finished"] is True
    summary = stored[key.replace("seed0", "summary")]["value"]
    assert summary["seeds"] == [0, 5] and summary["n"] == 2


def test_a_time_budget_needs_checkpoints_and_a_positive_length(tmp_path, capsys):
    runs = tmp_path / "runs.txt"
    runs.write_text("loss=nn seed=0\n")
    argv = ["--profile", "smoke", "--runs", str(runs), "--quiet"]
    assert sweep.main([*argv, "--hours", "1"]) == 2
    assert "--hours needs checkpoints" in capsys.readouterr().err
    assert sweep.main([*argv, "--hours", "0"]) == 2
    assert "--hours must be positive" in capsys.readouterr().err


def test_a_queue_killed_mid_way_keeps_the_summaries_of_its_finished_runs(tmp_path, monkeypatch):
    # Long queues are stopped by hand (kill), so a summary written only at the end would be
    # stale: the second seed's run must update it before the third run starts.
    calls = []

    def fake_training(data, loss, seed, profile, **kwargs):
        calls.append(seed)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the queue is killed during its third run
        return {"loss": loss, "seed": seed, "true_accuracy": 0.5 + 0.25 * seed, "epochs": 3,
                "pseudo_accuracy": 0.9, "expected_pseudo_accuracy": 0.9, "wall_time_s": 1.0,
                "loaded_from_cache": False, "finished": True, "precision": "float32"}  # fmt: skip

    monkeypatch.setattr(sweep, "train_and_score", fake_training)
    monkeypatch.setattr(sweep, "prepare_experiment", lambda *args: None)
    monkeypatch.setattr(sweep, "recorded_elsewhere", lambda *args: False)
    specs = parse_runs("loss=article seed=0\nloss=article seed=1\nloss=article seed=2\n")
    with pytest.raises(KeyboardInterrupt):
        sweep.run_queue(get_profile("smoke"), specs, results_dir=str(tmp_path))
    summary = load_results("smoke", tmp_path)[sweep.CHAPTER]["article/summary"]["value"]
    assert summary["seeds"] == [0, 1] and summary["true_accuracy_mean"] == pytest.approx(0.625)
