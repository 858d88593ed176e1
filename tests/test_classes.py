"""helpers.classes: bits per label as K grows, pseudo vs true accuracy, and the K = 2/4 queue."""

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from helpers.classes import (
    EXPERIMENT_KS,
    chance,
    label_information,
    labels_for_one_label,
    plot_information,
    plot_pseudo_vs_true,
)
from helpers.complementary import LOSS_NAMES, expected_pseudo_accuracy
from helpers.data import DEFAULT_CLASSES, DEFAULT_MAX_PER_CLASS
from helpers.profiles import PROFILES
from helpers.runs import parse_runs

matplotlib.use("Agg")

QUEUE = Path(__file__).resolve().parents[1] / "scripts" / "runs" / "four-classes.txt"
FOUR = ("airplanes", "watch", "Leopards", "Motorbikes")
PAIR = ("airplanes", "Leopards")
AVAILABLE = {"airplanes": 800, "watch": 239, "Leopards": 200, "Motorbikes": 798}


# --------------------------------------------------------------------------- information


@pytest.mark.parametrize(
    ("k", "ordinary", "complementary"),
    [
        (2, 1.0, 1.0),  # ruling out one of two classes names the other
        (3, math.log2(3), math.log2(1.5)),
        (4, 2.0, 2.0 - math.log2(3)),
        (8, 3.0, 3.0 - math.log2(7)),
    ],
)
def test_label_information_exact_values(k, ordinary, complementary):
    assert label_information(k) == pytest.approx((ordinary, complementary), rel=1e-12)


def test_complementary_information_falls_with_k_and_ordinary_rises():
    bits = np.array([label_information(k) for k in range(2, 50)])
    assert np.all(np.diff(bits[:, 0]) > 0)
    assert np.all(np.diff(bits[:, 1]) < 0)
    assert np.all(bits[1:, 1] < bits[1:, 0])  # from K = 3 on a "not" is worth less
    # For large K, log2(K / (K - 1)) ~ 1 / (K ln 2), as the module docstring says.
    assert label_information(1000)[1] == pytest.approx(1 / (1000 * math.log(2)), rel=1e-3)


def test_labels_for_one_label_is_the_ratio():
    assert labels_for_one_label(2) == pytest.approx(1.0)
    assert labels_for_one_label(3) == pytest.approx(math.log2(3) / math.log2(1.5))
    assert labels_for_one_label(3) == pytest.approx(2.7095, abs=1e-4)
    assert labels_for_one_label(4) == pytest.approx(4.8188, abs=1e-4)
    ratios = [labels_for_one_label(k) for k in range(2, 12)]
    assert np.all(np.diff(ratios) > 0)


def test_chance_is_one_over_k():
    assert [chance(k) for k in (2, 3, 4)] == [0.5, pytest.approx(1 / 3), 0.25]


@pytest.mark.parametrize("fn", [label_information, labels_for_one_label, chance])
@pytest.mark.parametrize("k", [1, 0, -3, 2.5])
def test_fewer_than_two_classes_is_an_error(fn, k):
    with pytest.raises(ValueError, match="integer >= 2"):
        fn(k)


# --------------------------------------------------------------------------- figures


def test_information_figure_draws_both_curves_and_rings_the_experiments():
    ks = list(range(2, 11))
    fig = plot_information(ks)
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    ordinary, complementary = (line.get_ydata() for line in ax.lines)
    expected = np.array([label_information(k) for k in ks])
    np.testing.assert_allclose(ordinary, expected[:, 0])
    np.testing.assert_allclose(complementary, expected[:, 1])
    (rings,) = ax.collections
    points = {tuple(p) for p in np.round(rings.get_offsets(), 12)}
    wanted = {(k, round(b, 12)) for k in EXPERIMENT_KS for b in label_information(k)}
    assert points == wanted  # K = 2's two rings coincide at 1 bit
    assert float(ax.xaxis.label.get_fontsize()) >= 10


def test_information_figure_without_the_experiments_has_no_rings():
    (ax,) = plot_information(range(5, 9)).axes
    assert len(ax.lines) == 2 and not ax.collections


def test_information_figure_rejects_bad_k():
    with pytest.raises(ValueError, match="integer >= 2"):
        plot_information([1, 2, 3])
    with pytest.raises(ValueError, match="at least one"):
        plot_information([])


def lines_by_gid(fig):
    (ax,) = fig.axes
    return {line.get_gid(): line for line in ax.lines if line.get_gid()}


def test_pseudo_figure_has_one_line_and_one_chance_marker_per_k():
    lines = lines_by_gid(plot_pseudo_vs_true((2, 3, 4)))
    assert set(lines) == {f"K={k}" for k in (2, 3, 4)} | {f"chance K={k}" for k in (2, 3, 4)}
    for k in (2, 3, 4):
        a, pseudo = lines[f"K={k}"].get_data()
        assert a[0] == 0 and a[-1] == 1
        np.testing.assert_allclose(pseudo, a + (1 - a) * (k - 2) / (k - 1))
        marker = lines[f"chance K={k}"]
        assert marker.get_color() == lines[f"K={k}"].get_color()
        (x,), (y,) = marker.get_data()
        assert x == pytest.approx(1 / k)
        assert y == pytest.approx(expected_pseudo_accuracy(1 / k, k))
        assert y == pytest.approx((k - 1) / k)  # chance pseudo accuracy


def test_pseudo_line_is_the_identity_at_k2_and_above_it_otherwise():
    lines = lines_by_gid(plot_pseudo_vs_true((2, 4)))
    a, pseudo = lines["K=2"].get_data()
    np.testing.assert_allclose(pseudo, a)
    a4, pseudo4 = lines["K=4"].get_data()
    assert np.all(pseudo4[:-1] > a4[:-1]) and pseudo4[-1] == pytest.approx(1.0)


# --------------------------------------------------------------------------- the run queue


@pytest.fixture(scope="module")
def queue():
    return parse_runs(QUEUE.read_text(encoding="utf-8"))


def test_queue_runs_are_valid_and_distinct(queue):
    keys = [spec.key(PROFILES["laptop"], "float32") for spec in queue]
    assert len(set(keys)) == len(keys)
    for spec in queue:
        spec.profile(PROFILES["laptop"])  # every override is a profile field
        assert spec.loss in (*LOSS_NAMES, "crossentropy")
        assert spec.classes in (FOUR, PAIR), spec.describe()
        assert spec.classes != DEFAULT_CLASSES  # K = 3 comes from the existing sweep


def test_queue_holds_the_planned_runs(queue):
    runs = {(spec.loss, spec.seed, len(spec.classes)) for spec in queue}
    four = {"crossentropy", "article", "forward", "pc", "nn", "scl_exp"}  # not scl_nl
    planned = {(loss, seed, 4) for loss in four for seed in (0, 1, 2)}
    planned |= {(loss, seed, 2) for loss in ("crossentropy", "article") for seed in (0, 1, 2)}
    assert runs == planned
    assert len(queue) == len(planned)


def test_queue_puts_the_minimum_first(queue):
    head = [(spec.loss, spec.seed, len(spec.classes)) for spec in queue[:6]]
    assert head == [
        ("crossentropy", 0, 4),
        ("article", 0, 4),
        ("forward", 0, 4),
        ("nn", 0, 4),
        ("crossentropy", 0, 2),
        ("article", 0, 2),
    ]
    first_extra = min(i for i, spec in enumerate(queue) if spec.loss in ("pc", "scl_exp"))
    assert all(spec.loss not in ("pc", "scl_exp") for spec in queue[:first_extra])
    assert first_extra == 18  # after all three seeds of the minimum


def test_queue_pair_is_balanced_after_the_caps():
    sizes = [min(AVAILABLE[c], DEFAULT_MAX_PER_CLASS.get(c, AVAILABLE[c])) for c in PAIR]
    assert sizes == [200, 200]
    assert set(PAIR) <= set(DEFAULT_CLASSES)


def test_queue_header_gives_the_command():
    header = QUEUE.read_text(encoding="utf-8").split("\nloss=", 1)[0]
    command = " ".join(line.lstrip("#").strip(" \\") for line in header.splitlines())
    for part in (
        "--profile laptop",
        "--runs scripts/runs/four-classes.txt",
        "--log artifacts/four-classes.log",
        "--results-dir book/results/four_classes",
    ):
        assert part in command
