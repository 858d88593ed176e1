"""helpers.mechanism: the closed-form gradients match autodiff of the book's own losses."""

import matplotlib
import numpy as np
import pytest

from helpers.mechanism import DERIVATIVES, logit_gradient_norm, plot_gradient_vs_p

matplotlib.use("Agg")


def logits_for(p: np.ndarray, num_classes: int) -> np.ndarray:
    """Logits whose softmax gives class 0 probability p and the others (1 - p) / (K - 1)."""
    others = (1 - p) / (num_classes - 1)
    z = np.zeros((len(p), num_classes))
    z[:, 0] = np.log(p) - np.log(others)
    return z


@pytest.mark.parametrize("num_classes", [3, 4])
@pytest.mark.parametrize("loss", sorted(DERIVATIVES))
def test_closed_form_equals_autodiff_of_the_loss(loss, num_classes):
    tf = pytest.importorskip("tensorflow")
    from helpers.complementary import get_loss

    p = np.array([0.05, 0.3, 0.6, 0.9, 0.99])
    logits = tf.Variable(logits_for(p, num_classes), dtype=tf.float64)
    fn = get_loss(loss, num_classes)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(fn.call(np.zeros(len(p), np.int64), tf.cast(logits, tf.float32)))
    grads = tape.gradient(total, logits).numpy()
    expected = logit_gradient_norm(loss, p, num_classes)
    np.testing.assert_allclose(np.linalg.norm(grads, axis=1), expected, rtol=2e-3, atol=1e-6)


def test_article_gradient_vanishes_where_scl_nl_grows():
    p = np.array([0.5, 0.9, 0.99, 0.999])
    article, nl = logit_gradient_norm("article", p), logit_gradient_norm("scl_nl", p)
    assert np.all(np.diff(article) < 0) and article[-1] < 1e-3
    assert np.all(np.diff(nl) > 0) and nl[-1] > 1.2
    np.testing.assert_allclose(logit_gradient_norm("forward", p), nl)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="No closed form for 'pc'"):
        logit_gradient_norm("pc", 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        logit_gradient_norm("article", 1.0)


def test_plot_has_a_line_per_loss():
    fig = plot_gradient_vs_p(("article", "scl_nl"))
    assert len(fig.axes[0].lines) == 2
    assert "p > 0.9" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1]
