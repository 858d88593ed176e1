"""Trained-model artifacts: where they live and how they are written and read atomically.

One run's directory, ``artifacts_dir()/<profile>/<backend>-<precision>/<name>-seed<seed>/``, holds
``model.weights.h5``, ``history.json``, ``meta.json`` and, written last, the marker file
``COMPLETE``. Everything is first written into a hidden temporary sibling directory that
is renamed into place in one ``os.replace``; a run interrupted at any point therefore
leaves either the previous complete run or nothing that :func:`is_complete` accepts.
:func:`exclusive` lets one process at a time train a run, so two notebooks (or two test
workers) that want the same model train it once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
from filelock import FileLock, Timeout

ARTIFACTS_ENV = "BOOK_ARTIFACTS_DIR"
WEIGHTS = "model.weights.h5"
HISTORY = "history.json"
META = "meta.json"
MARKER = "COMPLETE"


def artifacts_dir() -> Path:
    """``$BOOK_ARTIFACTS_DIR``, or ``artifacts/`` at the repository root (git-ignored)."""
    env = os.environ.get(ARTIFACTS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "artifacts"


def run_dir(
    name: str, profile: str, seed: int, backend: str | None = None, precision: str = "float32"
) -> Path:
    """Directory of one run: ``<artifacts>/<profile>/<backend>-<precision>/<name>-seed<seed>``.

    The precision is part of the path, so a bfloat16 run and a float32 run of the same
    name never stand in for each other.

    Raises
    ------
    ValueError
        If ``name`` is empty or contains a path separator.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(
            f"Run name {name!r} must be a plain, non-empty file name such as 'regular'."
        )
    backend = backend or keras.backend.backend()
    return artifacts_dir() / profile / f"{backend}-{precision}" / f"{name}-seed{seed}"


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` holds a finished run (its marker file is there)."""
    return (directory / MARKER).is_file() and (directory / WEIGHTS).is_file()


@contextmanager
def exclusive(directory: Path, note: Callable[[str], None] | None = print) -> Iterator[None]:
    """Hold the lock of one run while the block trains or loads it.

    A second process that asks for the same run waits here (``note`` says so once) and then
    finds it finished, instead of training it a second time beside the first. The lock is
    the hidden file ``.<run>.lock`` beside the run's folder; the operating system releases
    it if the process dies, so a killed run never blocks the next one.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(directory.parent / f".{directory.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if note is not None:
            note(f"{directory.name}: another process is training this run; waiting for it")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def save_run(
    directory: Path, model: keras.Model, history: dict[str, list[float]], meta: dict[str, Any]
) -> None:
    """Write weights, history and metadata to ``directory`` atomically.

    A previous run in ``directory`` is replaced. If anything fails (or the process is
    killed) before the final rename, ``directory`` is left as it was or absent.
    """
    with atomic_dir(directory) as tmp:
        model.save_weights(str(tmp / WEIGHTS))
        write_json(tmp / HISTORY, history)
        write_json(tmp / META, meta)
        (tmp / MARKER).write_text("complete\n", encoding="utf-8")  # written last


@contextmanager
def atomic_dir(directory: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``directory``.

    If the block fails (or the process is killed), ``directory`` is left as it was and the
    temporary folder is removed (or, after a kill, left hidden where nothing reads it).
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    prefix = directory.name if directory.name.startswith(".") else f".{directory.name}"
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}.", suffix=".tmp", dir=directory.parent))
    try:
        yield tmp
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is first moved aside, then deleted."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)  # between here and the next line there is no run at dst
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def read_json(path: Path) -> Any:
    """Load one JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run(directory: Path) -> tuple[Path, dict[str, list[float]], dict[str, Any]]:
    """Paths and records of a finished run: ``(weights path, history, meta)``.

    Raises
    ------
    FileNotFoundError
        If ``directory`` holds no finished run (absent, or interrupted before completion);
        train again (``retrain=True``) to create it.
    """
    if not is_complete(directory):
        raise FileNotFoundError(
            f"No finished training run in {directory}; train it (retrain=True) first."
        )
    return directory / WEIGHTS, read_json(directory / HISTORY), read_json(directory / META)
