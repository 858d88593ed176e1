"""The Colab set-up cell's helper: one line, the profile from the runtime, a restart only when needed."""

import os
from types import SimpleNamespace

from helpers import colab


def test_report_install_sets_the_profile_from_the_runtime_and_prints_one_line(monkeypatch, capsys):
    monkeypatch.delenv("BOOK_PROFILE", raising=False)
    monkeypatch.setattr(colab, "default_profile_name", lambda: "paper")
    monkeypatch.setattr(colab, "stale_modules", list)
    line = colab.report_install("https://example.org/book")
    out = capsys.readouterr().out
    assert out == line + "\n" and "\n" not in line
    assert "from https://example.org/book" in line and "BOOK_PROFILE=paper" in line
    assert f"keras {colab.installed_version('keras')}" in line
    assert "Restart" not in line
    assert os.environ["BOOK_PROFILE"] == "paper"


def test_a_profile_the_reader_chose_is_kept(monkeypatch):
    monkeypatch.setenv("BOOK_PROFILE", "laptop")
    monkeypatch.setattr(colab, "default_profile_name", lambda: "paper")
    monkeypatch.setattr(colab, "stale_modules", list)
    assert "BOOK_PROFILE=laptop" in colab.report_install("r")


def test_an_upgraded_module_already_imported_asks_for_a_restart(monkeypatch):
    numpy_now = colab.installed_version("numpy")
    loaded = {"numpy": SimpleNamespace(__version__="1.0.0"), "keras": None}
    assert colab.stale_modules(loaded) == [f"numpy 1.0.0 -> {numpy_now}"]
    import numpy

    assert colab.stale_modules({"numpy": numpy}) == []
    monkeypatch.setattr(colab, "stale_modules", lambda: ["numpy 1.0.0 -> 2.0.0"])
    line = colab.report_install("r")
    assert "Restart the runtime" in line and "numpy 1.0.0 -> 2.0.0" in line
