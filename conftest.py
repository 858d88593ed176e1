"""Pytest set-up shared by the unit tests and ``pytest --nbval book/``.

Everything run by pytest uses the ``smoke`` profile in float32, reads Caltech101 from the shared copy
beside the checkout when there is one, and keeps its artifacts and results out of the
committed book (notebook kernels inherit these variables).
"""

import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
SHARED = ROOT.parent / "shared" / "caltech101" / "101_ObjectCategories"

os.environ["BOOK_PROFILE"] = "smoke"
# float32 on every machine: "auto" picks mixed bfloat16 on a CPU with AMX or a recent GPU, and
# the run names, saved paths and numbers the tests check would then depend on the CPU. The
# precision tests set BOOK_PRECISION themselves.
os.environ["BOOK_PRECISION"] = "float32"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
if "CALTECH101_DIR" not in os.environ and SHARED.is_dir():
    os.environ["CALTECH101_DIR"] = str(SHARED)
# A fresh folder per pytest run: models trained by an older checkout never leak into this one.
# Parallel workers (pytest -n 2) inherit the first process's folder, so the chapters they run
# share their models (helpers.artifacts.exclusive trains each once) and their results store.
if not {"BOOK_RESULTS_DIR", "BOOK_ARTIFACTS_DIR"} <= os.environ.keys():
    _scratch = Path(tempfile.mkdtemp(prefix="wrong-labels-book-tests-"))
    os.environ.setdefault("BOOK_RESULTS_DIR", str(_scratch / "results"))
    os.environ.setdefault("BOOK_ARTIFACTS_DIR", str(_scratch / "artifacts"))

collect_ignore_glob = ["book/_build/*", "**/_build/*", ".venv/*", "artifacts/*"]


def share_cores_between_workers(environ: MutableMapping[str, str] = os.environ) -> None:
    """Give each pytest-xdist worker's TensorFlow its share of the cores, not all of them.

    Every TensorFlow process starts a pool of one thread per core, so two workers on two cores
    run four busy threads. One intra-op thread per core per worker and two inter-op threads
    (Xception's residual and separable paths run side by side) trained two smoke models at
    once in 41 s instead of 48 s on a 2-core EPYC. Applied only in an xdist worker, whose
    kernels (nbval) inherit it; a value already set by the user is kept.
    """
    workers = int(environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "PYTEST_XDIST_WORKER" in environ:
        share = max(1, (os.cpu_count() or 1) // workers)
        environ.setdefault("TF_NUM_INTRAOP_THREADS", str(share))
        environ.setdefault("TF_NUM_INTEROP_THREADS", "2")


share_cores_between_workers()


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config):
    """Plain ``pytest`` and ``pytest --nbval book/`` use every core: ``-n auto --dist loadfile``.

    Applied only when pytest-xdist is installed and no ``-n`` was given, so ``-n 0`` (or
    ``-p no:xdist``) runs everything in one process for debugging, and ``-n 2`` is obeyed.
    ``loadfile`` keeps a test file, or a notebook, on one worker. Workers (which xdist starts
    with ``numprocesses`` unset) are left alone, or each would start workers of its own. It is
    a wrapper so that it runs before xdist's own ``pytest_cmdline_main`` reads the option.
    """
    option = config.option
    worker = hasattr(config, "workerinput") or "PYTEST_XDIST_WORKER" in os.environ
    if hasattr(option, "numprocesses") and option.numprocesses is None and not worker:
        if not (option.usepdb or getattr(option, "collectonly", False)):
            option.numprocesses = "auto"
            if option.dist == "no":
                option.dist = "loadfile"
    return (yield)
