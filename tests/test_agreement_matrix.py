"""scripts/agreement_matrix.py: every pair of models compared, on real images and real maps."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "agreement_matrix.py"
spec = importlib.util.spec_from_file_location("agreement_matrix", SCRIPT)
script = importlib.util.module_from_spec(spec)
sys.modules["agreement_matrix"] = script
spec.loader.exec_module(script)


def test_models_are_written_loss_colon_seed():
    assert script.parse_model("article:1") == ("article", 1)
    with pytest.raises(argparse.ArgumentTypeError, match="LOSS:SEED"):
        script.parse_model("article")


def test_the_matrix_of_two_untrained_models(monkeypatch, capsys, tmp_path):
    from helpers.xception import build_xception

    built = {}

    def untrained(exp, loss, seed, profile, verbose=False):
        shape = exp.dataset.x_test.shape[1:]
        if seed not in built:  # one untrained network per seed (Xception is the slow part)
            built[seed] = build_xception(shape, exp.num_classes, seed=seed)
        return SimpleNamespace(model=built[seed])

    monkeypatch.setattr(script, "train_run", untrained)
    figure = tmp_path / "matrix.png"
    argv = [
        "--profile",
        "smoke",
        "--models",
        "crossentropy:0",
        "article:0",
        "--figure",
        str(figure),
    ]
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    assert "== shallow: block2_add ... block5_add" in out and "== deep:" in out
    assert "regular s0" in out and "article s0" in out and "mean rank correlation" in out
    assert "1.00" in out.split("== deep:")[1]  # the same maps agree perfectly
    assert figure.stat().st_size > 0
