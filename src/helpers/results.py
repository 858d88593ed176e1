"""The results store: chapters record headline numbers here, the book reads them back.

One JSON file per profile, ``book/results/<profile>.json``, shaped
``{"<chapter>": {"<key>": {"value": ..., "profile": ..., "backend": ..., ...}}}``.
Writes are atomic (temporary file + ``os.replace``), one writer at a time (a lock file
beside the store), and merge with what other chapters recorded, so no number in the book
is ever typed by hand.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

RESULTS_ENV = "BOOK_RESULTS_DIR"


def results_dir() -> Path:
    """``$BOOK_RESULTS_DIR`` or ``book/results`` of this repository."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "book" / "results"


def results_path(profile: str, directory: Path | str | None = None) -> Path:
    """Path of the results file for ``profile`` (in ``directory`` or :func:`results_dir`)."""
    base = Path(directory) if directory is not None else results_dir()
    return base / f"{profile}.json"


def load_results(profile: str, directory: Path | str | None = None) -> dict[str, Any]:
    """Everything recorded for ``profile`` (an empty dict when nothing is yet)."""
    path = results_path(profile, directory)
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def record(
    chapter: str,
    key: str,
    value: Any,
    *,
    profile: str,
    backend: str | None = None,
    seed: int | None = None,
    wall_time_s: float | None = None,
    directory: Path | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Record one number (or small JSON value) for ``chapter`` under ``key``.

    The entry carries the profile, backend, seed, date and wall time, and replaces any
    earlier entry with the same chapter and key. Returns the entry written.
    """
    if backend is None:
        import keras

        backend = keras.backend.backend()
    entry: dict[str, Any] = {
        "value": value,
        "profile": profile,
        "backend": backend,
        "seed": seed,
        "date": time.strftime("%Y-%m-%d"),
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 1),
    }
    entry.update(extra)
    path = results_path(profile, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read, change, write under a lock: two writers at once (parallel chapters, a training
    # queue beside a notebook) would otherwise each drop the other's new entry.
    with FileLock(path.parent / f".{path.name}.lock"):
        data = load_results(profile, directory)
        data.setdefault(chapter, {})[key] = entry
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.write("\n")
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; the store is an ordinary file
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return entry


def value(
    chapter: str, key: str, profile: str, directory: Path | str | None = None, default: Any = None
) -> Any:
    """The recorded value of ``chapter``/``key`` for ``profile`` (``default`` if absent)."""
    entry = load_results(profile, directory).get(chapter, {}).get(key)
    return default if entry is None else entry["value"]


def glue(name: str, val: Any) -> None:
    """Make ``val`` quotable in the chapter's prose as ``{glue:text}`name```.

    Uses myst-nb's ``glue`` (what the built book reads); where myst-nb is not installed
    (a bare Colab runtime) there is no book to quote into, so nothing happens.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, val, display=False)


def runs_by_device(
    profile: str, directory: Path | str | None = None, chapter: str = "complementary_sweep"
) -> list[dict[str, Any]]:
    """Where the recorded training runs of a store came from: one row per device and precision.

    Rows are ``{"device", "precision", "runs", "first", "last"}`` (dates), most runs first.
    Runs recorded before the precision was stored count as ``"float32 (not recorded)"``: every
    run before mixed precision existed was float32. Summaries over seeds are not runs.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for key, entry in load_results(profile, directory).get(chapter, {}).items():
        if "summary" in key.split("/") or not isinstance(entry, dict):
            continue
        value = entry.get("value")
        run: dict[str, Any] = value if isinstance(value, dict) else {}
        device = str(entry.get("device") or "device not recorded")
        precision = str(run.get("precision") or "float32 (not recorded)")
        row = rows.setdefault(
            (device, precision), {"device": device, "precision": precision, "runs": 0}
        )
        row["runs"] += 1
        date = str(entry.get("date", ""))
        row["first"] = min(row.get("first", date), date)
        row["last"] = max(row.get("last", date), date)
    return sorted(rows.values(), key=lambda r: (-r["runs"], r["device"], r["precision"]))
