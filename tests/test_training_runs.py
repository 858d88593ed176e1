"""Tests for a training run on disk: its cache and lock, atomic saves, checkpoints and
resuming, deadlines, and what makes two runs the same run.

The training pipeline itself (augmentation, batch norm, losses, metrics) is tested in
``test_training.py``, whose tiny profile and images these tests share.
"""

import shutil
import threading
import time
from dataclasses import replace

import keras
import numpy as np
import pytest
from filelock import FileLock, Timeout
from test_training import TINY, colour_images, shallow_xception

from helpers import artifacts
from helpers.training import predict_proba, run_directory, train_model


@pytest.fixture(autouse=True)
def scratch_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.ARTIFACTS_ENV, str(tmp_path / "artifacts"))


# ---------------------------------------------------------------------- cache and lock


def test_train_model_saves_reloads_and_guards_its_cache(capsys):
    x, y = colour_images(16)
    x_val, y_val = colour_images(8, seed=1)
    run = train_model("tiny", x, y, x_val, y_val, profile=TINY, seed=0)
    out = capsys.readouterr().out
    assert out.count("epoch   1/1") == 1 and "\r" not in out  # one line per epoch, no bars
    assert not run.loaded_from_cache and run.epochs_run == 1 and run.best_epoch == 1
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "val_accuracy_batch_stats"} <= set(
        run.history
    )
    assert run.directory == artifacts.run_dir("tiny", "unit", 0) == run_directory("tiny", TINY, 0)
    assert artifacts.is_complete(run.directory)
    before = predict_proba(run.model, x_val)

    again = train_model("tiny", x, y, x_val, y_val, profile=TINY, seed=0)
    assert again.loaded_from_cache and again.history == run.history
    assert again.wall_time_s == pytest.approx(run.wall_time_s)
    np.testing.assert_allclose(predict_proba(again.model, x_val), before, rtol=1e-5, atol=1e-6)

    with pytest.raises(ValueError, match="retrain=True"):
        train_model("tiny", x[:8], y[:8], x_val, y_val, profile=TINY, seed=0)  # other data


def test_a_run_in_training_elsewhere_is_waited_for_then_loaded(capsys):
    x, y = colour_images(16)
    x_val, y_val = colour_images(8, seed=1)
    directory = run_directory("tiny", TINY, 0)
    first = {}
    thread = threading.Thread(
        target=lambda: first.update(run=train_model("tiny", x, y, x_val, y_val, profile=TINY))
    )
    thread.start()
    probe = FileLock(directory.parent / f".{directory.name}.lock")
    while thread.is_alive():  # until the other trainer holds the run's lock
        try:
            probe.acquire(timeout=0)
        except Timeout:
            break
        probe.release()
        time.sleep(0.02)
    second = train_model("tiny", x, y, x_val, y_val, profile=TINY)
    thread.join()
    assert not first["run"].loaded_from_cache and second.loaded_from_cache
    assert "another process is training this run; waiting" in capsys.readouterr().out
    assert second.history == first["run"].history


def test_the_run_lock_is_released_after_an_error_and_says_when_it_waits(tmp_path):
    directory = tmp_path / "runs" / "m-seed0"
    with pytest.raises(RuntimeError), artifacts.exclusive(directory):
        raise RuntimeError("the training failed")
    notes: list[str] = []
    with artifacts.exclusive(directory, note=notes.append):  # free again: no wait, no note
        pass
    assert notes == []
    held, done = threading.Event(), threading.Event()

    def hold():
        with artifacts.exclusive(directory):
            held.set()
            time.sleep(0.5)
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(timeout=10)
    with artifacts.exclusive(directory, note=notes.append):
        assert done.is_set()  # entered only once the holder let go
    holder.join()
    assert notes == ["m-seed0: another process is training this run; waiting for it"]
    assert not artifacts.is_complete(directory) and not directory.exists()


# --------------------------------------------------------------------------- artifacts


def _save(directory, model, fail_at=None, monkeypatch=None):
    if fail_at:
        real = artifacts.write_json

        def broken(path, data):
            if path.name == fail_at:
                raise KeyboardInterrupt  # as if the user stopped the kernel mid-save
            real(path, data)

        monkeypatch.setattr(artifacts, "write_json", broken)
    artifacts.save_run(directory, model, {"loss": [1.0]}, {"note": "meta"})


def test_interrupted_save_leaves_nothing_that_loads(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    directory = tmp_path / "runs" / "m-seed0"
    with pytest.raises(KeyboardInterrupt):
        _save(directory, model, fail_at=artifacts.META, monkeypatch=monkeypatch)
    assert not directory.exists() and not artifacts.is_complete(directory)
    assert list(directory.parent.iterdir()) == []  # no temporary left behind
    with pytest.raises(FileNotFoundError, match="retrain=True"):
        artifacts.load_run(directory)


def test_interrupted_resave_keeps_the_previous_run(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    directory = tmp_path / "runs" / "m-seed0"
    _save(directory, model)
    with pytest.raises(KeyboardInterrupt):
        _save(directory, model, fail_at=artifacts.HISTORY, monkeypatch=monkeypatch)
    weights, history, meta = artifacts.load_run(directory)
    assert history == {"loss": [1.0]} and meta == {"note": "meta"} and weights.is_file()
    assert sorted(p.name for p in directory.parent.iterdir()) == ["m-seed0"]


def test_a_directory_without_the_marker_is_not_a_finished_run(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    directory = tmp_path / "m-seed0"
    artifacts.save_run(directory, model, {}, {})
    (directory / artifacts.MARKER).unlink()
    assert not artifacts.is_complete(directory)


# ------------------------------------------------------------ checkpoints and resuming


class _KeepCheckpoint(keras.callbacks.Callback):
    """Copies a run's checkpoint as it stands after epoch ``after``: what a kill would leave."""

    def __init__(self, directory, keep, after: int) -> None:
        super().__init__()
        self.directory, self.keep, self.after = directory, keep, after

    def on_epoch_end(self, epoch, logs=None):
        from helpers.checkpoint import partial_dir

        if epoch + 1 == self.after:
            shutil.copytree(partial_dir(self.directory), self.keep)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(capsys, tmp_path):
    from helpers import checkpoint

    # Two batches an epoch and three epochs: Keras draws each epoch's batch order, so a
    # resumed run must also restore that generator to match (one epoch would not show it).
    resumable = replace(TINY, max_epochs=3, patience=3, checkpoint=True)
    x, y = colour_images(16)
    x_val, y_val = colour_images(8, seed=1)
    directory = artifacts.run_dir("cut", "unit", 3)
    keep = tmp_path / "after-epoch-1"
    whole = train_model(
        "cut", x, y, x_val, y_val, profile=resumable, seed=3, verbose=False,
        monitor_batch_stats=False, callbacks=[_KeepCheckpoint(directory, keep, 1)],
    )  # fmt: skip
    assert artifacts.is_complete(directory) and not checkpoint.partial_dir(directory).exists()

    # The state of the same run killed after its first epoch: a checkpoint and no finished run.
    shutil.rmtree(directory)
    shutil.copytree(keep, checkpoint.partial_dir(directory))
    assert not artifacts.is_complete(directory)  # half-finished never looks finished
    capsys.readouterr()
    resumed = train_model(
        "cut", x, y, x_val, y_val, profile=resumable, seed=3, monitor_batch_stats=False
    )
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out and out.count("epoch   2/3") == 1
    assert "epoch   1/3" not in out  # epoch 1 was not trained again
    assert not resumed.loaded_from_cache and resumed.meta["resumed_after_epoch"] == 1
    assert not checkpoint.partial_dir(directory).exists()  # cleaned up once saved
    assert resumed.epochs_run == whole.epochs_run == 3
    assert resumed.best_epoch == whole.best_epoch
    for key in whole.history:
        np.testing.assert_allclose(resumed.history[key], whole.history[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(resumed.model.get_weights(), whole.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_other_settings_is_discarded(tmp_path, capsys):
    from helpers import checkpoint

    run = tmp_path / "unit" / "tensorflow-float32" / "stale-seed0"
    partial = checkpoint.partial_dir(run)
    partial.mkdir(parents=True)
    artifacts.write_json(partial / checkpoint.STATE, {"request": {"learning_rate": 1e-3}})
    assert checkpoint.load_checkpoint(run, {"learning_rate": 5e-4}) is None
    assert "discarding the checkpoint" in capsys.readouterr().out
    assert not partial.exists()
    assert checkpoint.load_checkpoint(run, {"learning_rate": 5e-4}) is None  # nothing left


# ------------------------------------------------------ deadlines and a run's identity


class _FakeModel:
    stop_training = False


class _Started(Exception):
    pass


class _StopAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise _Started


def test_stop_at_deadline_stops_only_a_run_that_would_go_on(monkeypatch):
    from helpers import checkpoint

    clock = iter([0.0, 10.0, 10.0, 30.0])  # epochs of 10 s and 20 s
    monkeypatch.setattr(checkpoint.time, "time", lambda: next(clock))
    timer = checkpoint.StopAtDeadline(deadline=45.0, max_epochs=5)
    timer.set_model(_FakeModel())
    timer.on_epoch_begin(0)
    timer.on_epoch_end(0)  # 10 + 10 <= 45: go on
    assert not timer.model.stop_training and not timer.reached
    timer.on_epoch_begin(1)
    timer.on_epoch_end(1)  # the next epoch, as slow as the slowest, would end at 50 > 45
    assert timer.model.stop_training and timer.reached and timer.longest == 20.0

    for epoch, stopped in ((4, False), (1, True)):  # the last epoch, or early stopping's own stop
        clock = iter([0.0, 100.0])
        timer = checkpoint.StopAtDeadline(deadline=50.0, max_epochs=5)
        timer.set_model(_FakeModel())
        timer.model.stop_training = stopped
        timer.on_epoch_begin(epoch)
        timer.on_epoch_end(epoch)
        assert not timer.reached  # the run is finished, not interrupted


def test_a_deadline_needs_a_checkpointing_profile():
    x, y = colour_images(8)
    with pytest.raises(ValueError, match="deadline needs checkpoints"):
        train_model("late", x, y, x, y, profile=replace(TINY, checkpoint=False), deadline=0.0)


def test_precision_is_part_of_a_runs_identity(monkeypatch):
    x, y = colour_images(8)
    x_val, y_val = colour_images(4, seed=1)
    fp32 = train_model("prec", x, y, x_val, y_val, profile=TINY, precision="float32", verbose=False)
    assert fp32.meta["precision"] == "float32"
    assert fp32.directory == artifacts.run_dir("prec", "unit", 0, precision="float32")

    # Asked for bfloat16, train_model starts training: it never loads the float32 run.
    monkeypatch.setenv("BOOK_PRECISION", "mixed_bfloat16")
    with pytest.raises(_Started):
        train_model("prec", x, y, x_val, y_val, profile=TINY, callbacks=[_StopAtStart()])

    # A finished bfloat16 run loads as one, from its own directory.
    bf16_dir = artifacts.run_dir("prec", "unit", 0, precision="mixed_bfloat16")
    model = shallow_xception(precision="mixed_bfloat16")
    model.set_weights(fp32.model.get_weights())
    artifacts.save_run(bf16_dir, model, fp32.history, {**fp32.meta, "precision": "mixed_bfloat16"})
    bf16 = train_model("prec", x, y, x_val, y_val, profile=TINY, verbose=False)
    assert bf16.loaded_from_cache and bf16.directory == bf16_dir
    assert bf16.model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert bf16.model.get_layer("logits").compute_dtype == "float32"

    monkeypatch.setenv("BOOK_PRECISION", "float32")
    back = train_model("prec", x, y, x_val, y_val, profile=TINY, verbose=False)
    assert back.loaded_from_cache and back.meta["precision"] == "float32"
    assert back.model.get_layer("block1_conv1").compute_dtype == "float32"


def test_a_shallower_run_reloads_shallow_and_is_not_a_full_ones_cache():
    x, y = colour_images(8)
    x_val, y_val = colour_images(4, seed=1)
    train_model("depth", x, y, x_val, y_val, profile=TINY, verbose=False)
    again = train_model("depth", x, y, x_val, y_val, profile=TINY, verbose=False)
    assert again.loaded_from_cache
    names = {layer.name for layer in again.model.layers}
    assert "block4_add" in names and "block5_add" not in names
    with pytest.raises(ValueError, match="trained with other profile"):
        train_model("depth", x, y, x_val, y_val, profile=replace(TINY, middle_blocks=1))
