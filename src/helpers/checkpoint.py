"""Per-epoch checkpoints, so that an interrupted training run resumes where it stopped.

After every epoch :class:`EpochRecorder` writes everything the rest of the run depends on
into a hidden sibling of the run's directory (``.<name>-seed<seed>.partial``): the weights
(BatchNorm statistics included), the optimizer's variables (Adam's moments and step count),
the early-stopping state with its best weights so far, the history and the training time.
Keras also shuffles the order of a ``PyDataset``'s batches with Python's global ``random``
module, so the checkpoint keeps that generator's state too, and puts it back as the first
resumed epoch begins. The write is atomic (``helpers.artifacts.atomic_dir``), and the run's
own directory, with its ``COMPLETE`` marker, is only written when training ends, so a
half-finished run never looks finished.

:func:`load_checkpoint` hands the state back to ``train_model``, which rebuilds the same
model, restores the state and continues with the next epoch. The input pipeline draws each
batch from ``(seed, epoch, batch)`` alone, so the resumed epochs see the same batches as an
uninterrupted run would, and the result is the same.

:class:`StopAtDeadline` ends a session's training on time (a Colab session, a CPU budget):
after the last epoch that fits, with the checkpoint in place, so the run is *unfinished*
rather than finished early, and the same command continues it later.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from helpers.artifacts import atomic_dir, read_json, write_json

STATE = "state.json"
WEIGHTS = "model.weights.h5"
BEST = "best_weights.npz"


def partial_dir(run_directory: Path) -> Path:
    """Where the checkpoint of the unfinished run ``run_directory`` lives (hidden sibling)."""
    return run_directory.with_name(f".{run_directory.name}.partial")


@dataclass
class Checkpoint:
    """The state of an unfinished run after ``epochs_done`` epochs.

    Attributes
    ----------
    directory
        The checkpoint directory (:func:`partial_dir`).
    epochs_done
        Epochs finished; training resumes with the next one.
    history
        Per-epoch logs so far.
    wall_time_s
        Training time spent so far.
    early_stopping
        ``wait``, ``best``, ``best_epoch`` (0-based) of the early-stopping callback.
    stop
        Whether training had already decided to stop (early stopping or NaN).
    python_random
        The state of Python's ``random`` module after the last finished epoch.
    """

    directory: Path
    epochs_done: int
    history: dict[str, list[float]]
    wall_time_s: float
    early_stopping: dict[str, Any]
    stop: bool
    python_random: Any = None

    def restore(self, trainer: keras.Model) -> list[np.ndarray] | None:
        """Load weights and optimizer state into the compiled ``trainer``; return best weights."""
        # Built first, the optimizer takes its saved variables (Adam's moments, step count)
        # from the same file as the weights.
        trainer.optimizer.build(trainer.trainable_variables)
        trainer.load_weights(str(self.directory / WEIGHTS))
        if not (self.directory / BEST).is_file():
            return None
        with np.load(self.directory / BEST) as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def load_checkpoint(run_directory: Path, request: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint of an unfinished run of exactly ``request``, else ``None``.

    A checkpoint left by a run with other settings or data is stale: it is deleted (with a
    printed note), and the run starts from scratch.
    """
    directory = partial_dir(run_directory)
    if not (directory / STATE).is_file():
        return None
    state = read_json(directory / STATE)
    if state.get("request") != json.loads(json.dumps(request)):
        print(f"discarding the checkpoint {directory.name}: it belongs to other settings")
        shutil.rmtree(directory, ignore_errors=True)
        return None
    return Checkpoint(
        directory,
        int(state["epochs_done"]),
        state["history"],
        float(state["wall_time_s"]),
        state["early_stopping"],
        bool(state["stop"]),
        state.get("python_random"),
    )


def discard(run_directory: Path) -> None:
    """Delete the checkpoint of ``run_directory`` (once the finished run is saved)."""
    shutil.rmtree(partial_dir(run_directory), ignore_errors=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):  # type: ignore[misc]
    """Keras' ``EarlyStopping`` that can start from a checkpoint's state."""

    def __init__(
        self,
        *args: Any,
        resume: dict[str, Any] | None = None,
        best_weights: list[np.ndarray] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.resume, self.resume_weights = resume, best_weights

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.resume:
            self.wait = int(self.resume["wait"])
            best = self.resume["best"]
            self.best = None if best is None else float(best)
            self.best_epoch = int(self.resume["best_epoch"])
            self.best_weights = self.resume_weights

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue: ``wait``, ``best``, ``best_epoch``."""
        best = None if self.best is None or not math.isfinite(self.best) else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}


class EpochRecorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Keeps the whole history (earlier sessions' epochs too) and checkpoints every epoch.

    Put it after every callback that changes the logs or the early-stopping state.
    ``directory=None`` records without checkpointing.
    """

    def __init__(
        self,
        request: dict[str, Any],
        early_stopping: ResumableEarlyStopping,
        directory: Path | None,
        resumed: Checkpoint | None = None,
    ) -> None:
        super().__init__()
        self.request, self.early_stopping, self.directory = request, early_stopping, directory
        self.history: dict[str, list[float]] = dict(resumed.history) if resumed else {}
        self.previous_wall = resumed.wall_time_s if resumed else 0.0
        self.started = time.perf_counter()
        self.random_state = resumed.python_random if resumed else None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.random_state is not None:  # before Keras draws this epoch's batch order
            version, internal, gauss = self.random_state
            random.setstate((version, tuple(internal), gauss))
            self.random_state = None

    def wall_time_s(self) -> float:
        """Training time over every session of this run."""
        return self.previous_wall + time.perf_counter() - self.started

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if self.directory is not None:
            self.save(epoch + 1)

    def save(self, epochs_done: int) -> None:
        """Write the checkpoint after ``epochs_done`` epochs, atomically."""
        assert self.directory is not None
        with atomic_dir(partial_dir(self.directory)) as tmp:
            self.model.save_weights(str(tmp / WEIGHTS))  # the optimizer's variables too
            if self.early_stopping.best_weights is not None:
                np.savez(tmp / BEST, *self.early_stopping.best_weights)
            state = {
                "request": self.request,
                "epochs_done": epochs_done,
                "history": self.history,
                "wall_time_s": self.wall_time_s(),
                "early_stopping": self.early_stopping.state(),
                "stop": bool(self.model.stop_training),
                "python_random": random.getstate(),
            }
            write_json(tmp / STATE, state)


class StopAtDeadline(keras.callbacks.Callback):  # type: ignore[misc]
    """Stops training after the last epoch that ends before ``deadline`` (``time.time()``).

    An epoch is assumed to take as long as the slowest one so far; training stops when the
    next would end past the deadline. ``reached`` then says the run is unfinished (and not
    stopped by early stopping or its epoch budget). Put it after :class:`EpochRecorder`, so
    the checkpoint of the last epoch records the run as still going.
    """

    def __init__(self, deadline: float, max_epochs: int) -> None:
        super().__init__()
        self.deadline, self.max_epochs = deadline, max_epochs
        self.longest, self.reached = 0.0, False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.started = time.time()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.time()
        self.longest = max(self.longest, now - self.started)
        done = self.model.stop_training or epoch + 1 >= self.max_epochs
        if not done and now + self.longest > self.deadline:
            self.model.stop_training, self.reached = True, True
