"""Plain ``pytest`` runs on every core (the root conftest's ``pytest_cmdline_main``)."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_hook(monkeypatch, worker=False, **option):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    defaults = {"numprocesses": None, "dist": "no", "usepdb": False, "collectonly": False}
    config = SimpleNamespace(option=SimpleNamespace(**{**defaults, **option}))
    if worker:
        config.workerinput = {"workerid": "gw0"}
    hook = root_conftest().pytest_cmdline_main(config)
    next(hook)  # the part before xdist's own hook
    with pytest.raises(StopIteration):
        hook.send(0)
    return config.option


def test_no_n_means_every_core_one_file_per_worker(monkeypatch):
    option = run_hook(monkeypatch)
    assert (option.numprocesses, option.dist) == ("auto", "loadfile")


@pytest.mark.parametrize("given", [0, 2])
def test_an_explicit_n_is_obeyed(monkeypatch, given):
    option = run_hook(monkeypatch, numprocesses=given)
    assert (option.numprocesses, option.dist) == (given, "no")


def test_workers_pdb_and_collect_only_are_left_alone(monkeypatch):
    assert run_hook(monkeypatch, worker=True).numprocesses is None
    assert run_hook(monkeypatch, usepdb=True).numprocesses is None
    assert run_hook(monkeypatch, collectonly=True).numprocesses is None


def test_without_xdist_nothing_changes(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    config = SimpleNamespace(option=SimpleNamespace(dist="no", usepdb=False))
    hook = root_conftest().pytest_cmdline_main(config)
    next(hook)
    assert not hasattr(config.option, "numprocesses")


def test_each_worker_gets_its_share_of_the_cores(monkeypatch):
    share = root_conftest().share_cores_between_workers
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    worker = {"PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_WORKER_COUNT": "2"}
    share(worker)
    assert (worker["TF_NUM_INTRAOP_THREADS"], worker["TF_NUM_INTEROP_THREADS"]) == ("4", "2")
    many = {"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "16"}
    share(many)
    assert many["TF_NUM_INTRAOP_THREADS"] == "1"  # never zero threads
    chosen = {**worker, "TF_NUM_INTRAOP_THREADS": "3"}
    del chosen["TF_NUM_INTEROP_THREADS"]
    share(chosen)
    assert chosen["TF_NUM_INTRAOP_THREADS"] == "3"  # the user's own setting is kept


@pytest.mark.parametrize("environ", [{}, {"PYTEST_XDIST_WORKER_COUNT": "1"}])
def test_a_single_process_keeps_every_core(environ):
    root_conftest().share_cores_between_workers(environ)
    assert "TF_NUM_INTRAOP_THREADS" not in environ
