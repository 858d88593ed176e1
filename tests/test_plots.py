"""helpers.plots: figures build from small inputs, and the headline is only saved by real runs."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers import plots


def test_band_plot_and_headline(tmp_path):
    fig = plots.band_plot(["a", "b"], {"x": (np.ones(2), np.zeros(2), 2 * np.ones(2))}, "y")
    assert isinstance(fig, Figure)
    target = tmp_path / "headline.png"
    assert plots.save_headline(fig, "smoke", str(target)) is False and not target.exists()
    assert plots.save_headline(fig, "laptop", str(target)) is True and target.stat().st_size > 0


def test_image_grid_and_learning_curves_check_their_input():
    with pytest.raises(ValueError, match="at least one image"):
        plots.image_grid([])
    with pytest.raises(ValueError, match="validation twin"):
        plots.learning_curves({"loss": [1.0]})
    fig = plots.learning_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    assert len(fig.axes) == 1


def test_confusion_matrix_and_loss_shapes():
    fig = plots.confusion_matrix_plot(np.array([[3, 1], [0, 4]]), ["a", "b"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["3", "1", "0", "4"]
    assert len(plots.loss_shapes(3, points=20).axes) == 2


def test_as_jpeg_is_a_small_jpeg():
    fig = plots.image_grid([np.random.default_rng(0).uniform(size=(32, 32, 3))] * 4)
    image = plots.as_jpeg(fig)
    assert image.format == "jpeg" and image.data[:2] == b"\xff\xd8"


def test_randomization_plot_draws_a_panel_per_model_and_the_reference_lines():
    steps = ["trained", "logits", "block14"]
    curves = {m: {"l1": np.array([1.0, 0.8, 0.2]), "l2": np.array([1.0, 0.9, 0.5])} for m in "ab"}
    fig = plots.randomization_plot(steps, curves, reference={"l1": 0.4})
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3  # two curves and one dashed reference (l2 has none)
    assert [line.get_linestyle() for line in lines].count("--") == 1
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == steps
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["l1", "l1: reference (dashed)", "l2"]  # every line, the reference too


def test_faithfulness_plot_draws_map_and_random_per_model_and_layer():
    from helpers.faithfulness import Curve, LayerFaithfulness

    fr = np.linspace(0, 1, 5)
    c = Curve(fr, np.tile(np.linspace(1, 0, 5), (3, 1)))
    found = LayerFaithfulness(c, c, c, c)
    fig = plots.faithfulness_plot(
        {"regular": {"deep": found, "middle": found}, "x": {"deep": found, "middle": found}}
    )
    assert [ax.get_title() for ax in fig.axes] == ["deep", "middle"]
    assert len(fig.axes[0].get_lines()) == 4  # each model's map and its random order
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), np.linspace(1, 0, 5))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["regular", "regular, random order", "x", "x, random order"]
    assert fig.axes[0].get_ylabel() == "class probability"
    logit = Curve(fr, np.tile(np.linspace(3, -1, 5), (3, 1)), score="logit")
    fig = plots.faithfulness_plot({"m": {"deep": LayerFaithfulness(logit, logit, logit, logit)}})
    assert fig.axes[0].get_ylabel() == "class logit"  # the axis says what the curve scores


def test_confusion_matrices_side_by_side_keep_their_numbers_and_titles():
    regular = np.array([[40, 1, 0], [2, 30, 1], [0, 0, 54]])
    complementary = np.array([[30, 11, 0], [1, 32, 0], [0, 3, 51]])
    fig = plots.confusion_matrices_plot(
        {"regular": regular, "complementary": complementary}, ["air", "watch", "leo"]
    )
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["regular", "complementary"]
    numbers = [[int(t.get_text()) for t in ax.texts] for ax in axes]
    assert numbers == [regular.ravel().tolist(), complementary.ravel().tolist()]
    with pytest.raises(ValueError, match="3x3"):
        plots.confusion_matrices_plot({"bad": np.eye(2)}, ["a", "b", "c"])
    with pytest.raises(ValueError, match="at least one"):
        plots.confusion_matrices_plot({}, ["a"])


def test_difference_plot_draws_each_series_with_its_interval_and_the_zero_line():
    from types import SimpleNamespace

    layers = ["block2_add", "block9_add", "block14_sepconv2_act"]
    est = {la: SimpleNamespace(mean=-0.1 * i, low=-0.1 * i - 0.05, high=-0.1 * i + 0.05)
           for i, la in enumerate(layers)}  # fmt: skip
    fig = plots.difference_plot(layers, {"article": est, "forward": est})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "9", "14"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["no difference from the control", "article", "forward"]
    zero = next(
        line for line in ax.get_lines() if str(line.get_label()).startswith("no difference")
    )
    assert set(zero.get_ydata()) == {0}
    assert fig.get_dpi() * fig.get_figwidth() >= 900  # legible at the book's content width
    with pytest.raises(ValueError, match="one to three"):
        plots.difference_plot(layers, dict.fromkeys("abcd", est))


def test_panels_of_differences_share_colours_and_scale_and_keep_an_empty_panel():
    from types import SimpleNamespace

    layers = ["block2_add", "block14_sepconv2_act"]
    est = {la: SimpleNamespace(mean=-0.2, low=-0.3, high=-0.1) for la in layers}
    fig = plots.panels_of_differences(layers, {"A": {"x": est, "y": est}, "B": {"y": est}, "C": {}})
    a, b, c = fig.axes
    assert a.containers[1][0].get_color() == b.containers[0][0].get_color()  # y
    assert a.get_ylim() == c.get_ylim() and [t.get_text() for t in c.texts] == ["not stored yet"]
    assert a.get_xlabel() == "" and c.get_xlabel().startswith("residual stage")
    assert fig.get_dpi() * fig.get_figwidth() >= 900
    with pytest.raises(ValueError, match="at least one panel"):
        plots.panels_of_differences(layers, {})
    with pytest.raises(ValueError, match="one to three"):
        plots.panels_of_differences(layers, {"A": dict.fromkeys("abcd", est)})
