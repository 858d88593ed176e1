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
