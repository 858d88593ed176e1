"""Stored deletion/insertion curves, and "beats random" pooled over the models of a kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_faithfulness import keras_model

from helpers.faithfulness import Curve, LayerFaithfulness, faithfulness_table
from helpers.faithfulness_store import (
    SETTINGS,
    faithfulness_path,
    kind_verdicts,
    load_faithfulness,
    measure,
    save_faithfulness,
)

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = np.linspace(0, 1, SETTINGS["steps"] + 1)  # the store holds the book's settings


def layer(map_drop: np.ndarray, n: int = 30, seed: int = 0) -> LayerFaithfulness:
    """Curves falling linearly to ``1 - drop``: the map's by ``map_drop`` per image, the
    random order's by 0.5, so map AUC minus random AUC is ``(0.5 - map_drop) / 2``."""
    rng = np.random.default_rng(seed)

    def curve(drop: np.ndarray) -> Curve:
        scores = 1 - np.outer(drop, FRACTIONS) + rng.normal(0, 1e-3, (n, len(FRACTIONS)))
        return Curve(FRACTIONS, scores, "relative")

    half = np.full(n, 0.5)
    return LayerFaithfulness(curve(map_drop), curve(1 - map_drop), curve(half), curve(half),
                             baseline_probability=np.full(n, 0.4))  # fmt: skip


def test_curves_round_trip_with_devices_and_images(tmp_path):
    results = {"regular s0": {"block2_add": layer(np.full(30, 0.8))},
               "article s3": {"block2_add": layer(np.full(30, 0.2))}}  # fmt: skip
    path = save_faithfulness(tmp_path / "f.npz", results, {"regular s0": "cpu A", "article s3": "cpu B"},
                             np.arange(30))  # fmt: skip
    back, devices, idx = load_faithfulness(path)
    assert devices == {"regular s0": "cpu A", "article s3": "cpu B"} and list(idx) == list(
        range(30)
    )
    r = back["article s3"]["block2_add"]
    np.testing.assert_allclose(
        r.deletion.scores, results["article s3"]["block2_add"].deletion.scores, atol=1e-6
    )
    assert r.deletion.score == "relative" and r.start_probability is None
    np.testing.assert_allclose(r.baseline_probability, 0.4)
    assert "article s3" in faithfulness_table(back)  # the stored results feed the usual table
    assert faithfulness_path("laptop", tmp_path) == tmp_path / "faithfulness" / "laptop.npz"
    with pytest.raises(ValueError, match="device for every model"):
        save_faithfulness(tmp_path / "g.npz", results, {"regular s0": "cpu"}, np.arange(30))


def test_curves_of_other_steps_than_the_settings_are_refused_and_nothing_is_written(tmp_path):
    full = layer(np.full(30, 0.8))
    few = LayerFaithfulness(*(Curve(c.fractions[::4], c.scores[:, ::4], c.score)
                              for c in (full.deletion, full.insertion, full.random_deletion,
                                        full.random_insertion)))  # fmt: skip
    results = {"regular s0": {"block2_add": full, "block9_add": few}}
    with pytest.raises(ValueError, match=r"regular s0 at block9_add \(5\).*no steps"):
        save_faithfulness(tmp_path / "f.npz", results, {"regular s0": "cpu"}, np.arange(30))
    assert not (tmp_path / "f.npz").exists()


def test_measure_uses_the_settings_unless_told_fewer_steps():
    model = keras_model()
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
    book = measure(model, x, ["deep"])["deep"]
    few = measure(model, x, ["deep"], steps=2)["deep"]
    assert book.deletion.fractions.shape == (SETTINGS["steps"] + 1,)
    assert few.deletion.fractions.shape == few.random_insertion.fractions.shape == (3,)
    assert few.deletion.score == SETTINGS["score"]  # the other settings stay the book's


def test_a_kind_beats_random_only_when_its_models_agree_on_it():
    good = {f"regular s{s}": {"l": layer(np.full(30, 0.9), seed=s)} for s in range(3)}
    verdict = kind_verdicts(good, "regular", n_boot=500)["l"]
    assert verdict.high < 0 and verdict.mean == pytest.approx(-0.2, abs=0.01)
    # Every image of every model is clear-cut, but the models disagree: one better than random,
    # one worse. Images alone would give a tight interval; drawing the models shows the doubt.
    split = {
        "article s0": {"l": layer(np.full(30, 0.9))},
        "article s1": {"l": layer(np.full(30, 0.1))},
    }
    verdict = kind_verdicts(split, "article", n_boot=500)["l"]
    assert verdict.low < 0 < verdict.high
    insertion = kind_verdicts(good, "regular", curve="insertion", n_boot=500)["l"]
    assert insertion.low > 0  # insertion of the best pixels first rises faster than random
    with pytest.raises(ValueError, match="no model of kind"):
        kind_verdicts(good, "forward")


def test_the_script_documents_itself():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "save_faithfulness.py"), "--help"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert "--replace" in out.stdout


def test_kinds_pool_their_images_and_the_verdict_table_reads_both_curves():
    from helpers.faithfulness_store import pool_by_kind, verdict_table

    results = {f"regular s{s}": {"l": layer(np.full(30, 0.9), seed=s)} for s in range(3)}
    results["article s0"] = {"l": layer(np.full(30, 0.5))}
    pooled = pool_by_kind(results)
    assert list(pooled) == ["regular", "article"]
    assert pooled["regular"]["l"].deletion.scores.shape == (90, len(FRACTIONS))
    assert pooled["regular"]["l"].baseline_probability.shape == (90,)
    table, found = verdict_table(results, n_boot=300)
    rows = table.splitlines()
    assert rows[1].split()[:3] == ["regular", "3", "l"] and "del. beats, ins. beats" in rows[1]
    assert "del. no, ins. no" in rows[2]  # a map no better than its random order
    worse = {f"article s{s}": {"l": layer(np.full(30, 0.1), seed=s)} for s in range(3)}
    assert "del. worse, ins. worse" in verdict_table(worse, n_boot=300)[0]
    assert found[("regular", "l", "deletion")].high < 0 < found[("regular", "l", "insertion")].low
