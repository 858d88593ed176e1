"""Run-profile selection and the results store."""

import json

import pytest

from helpers import profiles, results
from helpers.profiles import PROFILES, get_profile
from helpers.results import load_results, record, results_path, value


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("BOOK_PROFILE", "laptop")
    assert get_profile().name == "laptop"
    assert get_profile().image_size == 96
    monkeypatch.setenv("BOOK_PROFILE", " Smoke ")
    assert get_profile().image_size == 71


def test_explicit_name_wins_over_environment(monkeypatch):
    monkeypatch.setenv("BOOK_PROFILE", "smoke")
    assert get_profile("paper").name == "paper"


def test_paper_profile_matches_the_original_study():
    paper = PROFILES["paper"]
    assert (paper.image_size, paper.batch_size, paper.learning_rate) == (299, 16, 1e-5)
    assert paper.amsgrad and paper.patience == 3 and paper.max_epochs == 1000


@pytest.mark.parametrize(("gpu", "expected"), [(True, "paper"), (False, "laptop")])
def test_default_depends_on_gpu(monkeypatch, gpu, expected):
    monkeypatch.delenv("BOOK_PROFILE", raising=False)
    monkeypatch.setattr(profiles, "gpu_available", lambda: gpu)
    assert get_profile().name == expected


def test_unknown_profile_lists_valid_names(monkeypatch):
    with pytest.raises(ValueError, match="Unknown run profile 'huge'.*smoke, laptop, paper"):
        get_profile("huge")
    monkeypatch.setenv("BOOK_PROFILE", "tiny")
    with pytest.raises(ValueError, match="'tiny'.*BOOK_PROFILE"):
        get_profile()


def test_record_writes_entry_with_metadata(tmp_path):
    entry = record("data", "n_total", 639, profile="smoke", backend="jax", seed=0,
                   wall_time_s=1.234, directory=tmp_path)  # fmt: skip
    assert entry["value"] == 639 and entry["backend"] == "jax" and entry["seed"] == 0
    assert entry["wall_time_s"] == 1.2 and entry["profile"] == "smoke"
    stored = json.loads((tmp_path / "smoke.json").read_text())
    assert stored == {"data": {"n_total": entry}}
    assert value("data", "n_total", "smoke", directory=tmp_path) == 639


def test_record_merges_and_replaces(tmp_path):
    record("data", "n_total", 1, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("data", "n_train", 511, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("regular", "accuracy", 0.9, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("data", "n_total", 639, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("data", "n_total", 7, profile="laptop", backend="tensorflow", directory=tmp_path)
    data = load_results("smoke", tmp_path)
    assert sorted(data) == ["data", "regular"]
    assert {k: v["value"] for k, v in data["data"].items()} == {"n_total": 639, "n_train": 511}
    assert value("regular", "accuracy", "smoke", directory=tmp_path) == 0.9
    assert value("data", "n_total", "laptop", directory=tmp_path) == 7


def test_missing_results_give_defaults(tmp_path):
    assert load_results("paper", tmp_path) == {}
    assert value("data", "n_total", "paper", directory=tmp_path, default="n/a") == "n/a"


def test_results_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "elsewhere"))
    record("data", "n_test", 128, profile="smoke", backend="tensorflow")
    assert results_path("smoke") == tmp_path / "elsewhere" / "smoke.json"
    assert value("data", "n_test", "smoke") == 128


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    record("data", "n_total", 639, profile="smoke", backend="tensorflow", directory=tmp_path)
    before = (tmp_path / "smoke.json").read_bytes()

    def broken_dump(obj, f, **kw):
        f.write('{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr(results.json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        record("data", "n_total", 1, profile="smoke", backend="tensorflow", directory=tmp_path)
    assert (tmp_path / "smoke.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["smoke.json"]  # no temporary file left
