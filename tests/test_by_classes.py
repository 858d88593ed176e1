"""helpers.by_classes: accuracy per loss and number of classes, its table and its figure."""

import math

import matplotlib
import numpy as np
import pytest

from helpers.by_classes import (
    CIFAR,
    ORIGINAL_FOUR_CLASSES,
    accuracy_by_k,
    cost_of_a_class,
    describe_change,
    format_by_k,
    format_references,
    missing_runs,
    plot_accuracy_by_k,
    provenance,
)
from helpers.experiment import load_sweep
from helpers.results import record
from helpers.runs import parse_runs

matplotlib.use("Agg")

THREE = ["airplanes", "watch", "Leopards"]
FOUR = [*THREE, "Motorbikes"]
PAIR = ["airplanes", "Leopards"]


def row(loss, seed, acc, classes, device="CPU (test)"):
    return {
        "loss": loss,
        "seed": seed,
        "true_accuracy": acc,
        "classes": list(classes),
        "precision": "float32",
        "device": device,
    }


def rows():
    return [
        row("article", 1, 0.5, FOUR),
        row("article", 0, 0.7, FOUR),
        row("crossentropy", 0, 0.9, FOUR),
        row("article", 0, 0.8, THREE),
        row("article", 1, 0.7, THREE),
        row("article", 2, 0.9, THREE),
        row("crossentropy", 0, 0.95, PAIR),
    ]


def test_groups_by_loss_and_k_in_book_order_with_seeds_sorted():
    results = accuracy_by_k(rows())
    assert list(results) == [
        ("crossentropy", 2),
        ("crossentropy", 4),
        ("article", 3),
        ("article", 4),
    ]
    four = results[("article", 4)]
    assert four.seeds == (0, 1) and four.accuracies == (0.7, 0.5)
    assert four.classes == tuple(FOUR) and four.n == 2
    assert four.sd == pytest.approx(np.std([0.7, 0.5], ddof=1))
    assert four.estimate.mean == pytest.approx(0.6)
    # A t-interval with one degree of freedom is wide; it is clipped to what an accuracy can be.
    assert 0.0 <= four.estimate.low < 0.5 and 0.7 < four.estimate.high <= 1.0


def test_one_seed_has_no_interval_and_zero_sd():
    r = accuracy_by_k(rows())[("crossentropy", 2)]
    assert r.sd == 0.0 and math.isnan(r.estimate.low)
    assert "no interval" in format_by_k({("crossentropy", 2): r})


def test_two_class_lists_of_one_k_are_refused():
    mixed = [row("article", 0, 0.8, PAIR), row("article", 1, 0.7, ["watch", "Leopards"])]
    with pytest.raises(ValueError, match="different classes"):
        accuracy_by_k(mixed)


def test_table_shows_chance_per_k_and_every_seed():
    text = format_by_k(accuracy_by_k(rows()))
    lines = text.splitlines()
    assert len(lines) == 5
    article4 = next(line for line in lines if line.startswith("article") and " 4 " in line)
    assert "25.0%" in article4 and "70.0%, 50.0%" in article4 and "60.0% ±" in article4
    pair = next(line for line in lines if " 2 " in line)
    assert "50.0%" in pair


def test_provenance_names_classes_precision_and_device_per_k():
    text = provenance(accuracy_by_k(rows()))
    assert text.splitlines()[0] == "K = 2: airplanes, Leopards; float32 on CPU (test)"
    assert "K = 4: airplanes, watch, Leopards, Motorbikes" in text


def test_cost_of_a_class_is_the_drop_in_mean():
    results = accuracy_by_k(rows())
    assert cost_of_a_class(results, "article") == pytest.approx(0.8 - 0.6)
    with pytest.raises(KeyError, match="K = \\[3\\]"):
        cost_of_a_class(results, "crossentropy")


def test_references_are_the_published_numbers():
    text = format_references()
    assert "about 60%" in text
    assert "3 classes 91.4% / 85.9%; 4 classes 84.8% / 62.1%" in text


def test_missing_runs_are_the_queue_lines_without_a_row():
    queue = parse_runs(
        "loss=article seed=0 classes=airplanes,watch,Leopards,Motorbikes\n"
        "loss=article seed=2 classes=airplanes,watch,Leopards,Motorbikes\n"
        "loss=crossentropy seed=0 classes=airplanes,Leopards\n"
        "loss=article seed=0\n"
    )
    missing = missing_runs(queue, rows())
    assert [(s.loss, s.seed, len(s.classes)) for s in missing] == [("article", 2, 4)]
    assert missing_runs(queue, []) == queue


def test_describe_change_reads_either_way():
    assert describe_change(0.076) == "7.6 points lower"
    assert describe_change(-0.008) == "0.8 points higher"
    assert describe_change(0.0004) == "unchanged"


def test_figure_draws_each_loss_chance_and_references():
    fig = plot_accuracy_by_k(accuracy_by_k(rows()))
    ax = fig.axes[0]
    lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    article = lines["loss=article"]
    # The mean per K, at K (plus a small offset that keeps losses apart).
    assert np.allclose(np.round(article.get_xdata()), [3, 4])
    assert np.allclose(article.get_ydata(), [0.8, 0.6])
    labels = [line.get_label() for line in ax.get_lines()]
    assert "chance: 1/K" in labels and "original, 4 classes" in labels
    star = next(line for line in ax.get_lines() if line.get_label() == "original, 4 classes")
    assert np.asarray(star.get_ydata(), dtype=float)[0] == ORIGINAL_FOUR_CLASSES
    assert not any(str(line.get_label()).startswith("CIFAR") for line in ax.get_lines())
    reference = fig.axes[1]  # another data set: a panel of its own
    cifar = next(
        line for line in reference.get_lines() if line.get_label() == "CIFAR-10, complementary"
    )
    assert list(cifar.get_ydata()) == [CIFAR[3][1], CIFAR[4][1]]
    assert ax.get_legend() is None and fig.legends, "the legend sits outside the data"
    chance = next(line for line in ax.get_lines() if line.get_label() == "chance: 1/K")
    x = np.asarray(chance.get_xdata(), dtype=float)
    assert np.allclose(np.asarray(chance.get_ydata(), dtype=float), 1 / x)


def test_figure_without_runs_says_what_to_do():
    with pytest.raises(ValueError, match="sweep_losses"):
        plot_accuracy_by_k({})


def test_reads_what_the_sweep_records(tmp_path):
    # The chapter's path: rows recorded per class list, loaded per class list, then grouped.
    for classes, accs in ((THREE, (0.8, 0.7)), (FOUR, (0.6, 0.5))):
        for seed, acc in enumerate(accs):
            key = f"article/seed{seed}" + ("" if classes == THREE else "/" + "-".join(classes))
            record(
                "complementary_sweep",
                key,
                row("article", seed, acc, classes) | {"overrides": {}},
                profile="laptop",
                backend="tensorflow",
                directory=tmp_path,
            )
    loaded = load_sweep("laptop", tmp_path) + load_sweep("laptop", tmp_path, classes=FOUR)
    results = accuracy_by_k(loaded)
    assert results[("article", 3)].accuracies == (0.8, 0.7)
    assert results[("article", 4)].accuracies == (0.6, 0.5)
