"""Tests for helpers.complementary: labels, losses (values, gradients, identities), metrics."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from scipy import stats

from helpers import complementary as comp

ALL_LOSSES = comp.LOSS_NAMES + comp.EXTRA_LOSS_NAMES
ROOT = Path(__file__).resolve().parents[1]

# Logits at which a naive softmax/log would overflow, underflow or give log(0).
EXTREME_LOGITS = np.array(
    [
        [1e4, 0.0, -1e4],  # p_ybar = 1 when ybar = 0
        [-1e4, -1e4, -1e4],  # uniform, huge magnitude
        [1e4, -1e4, -1e4],
        [-1e4, 1e4, 1e4],
        [0.0, 0.0, 0.0],
        [88.0, -88.0, 0.0],
    ],
    dtype="float32",
)
EXTREME_YBAR = np.array([0, 1, 0, 0, 2, 0])


def np_log_softmax(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    m = f.max(axis=-1, keepdims=True)
    return f - m - np.log(np.exp(f - m).sum(axis=-1, keepdims=True))


def loss_values(name: str, ybar, logits) -> np.ndarray:
    """Per-example values of a loss function (nn: its scalar batch value)."""
    fn = comp._FUNCTIONS[name]
    return keras.ops.convert_to_numpy(fn(np.asarray(ybar), np.asarray(logits, dtype="float32")))


def value_and_gradient(loss: keras.losses.Loss, ybar, logits):
    """The loss's value and its gradient with respect to the logits, on the active backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        f = tf.constant(logits)
        with tf.GradientTape() as tape:
            tape.watch(f)
            value = loss(ybar, f)
        return value.numpy(), tape.gradient(value, f).numpy()
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda f: loss(ybar, f))(logits)
        return np.asarray(value), np.asarray(grad)
    pytest.skip(f"no gradient helper for the {backend} backend")


# --------------------------------------------------------------------------- labels


def test_labels_never_equal_true_label():
    y = np.repeat(np.arange(4), 250)
    for seed in range(5):
        ybar = comp.complementary_labels(y, 4, seed)
        assert ybar.shape == y.shape and ybar.dtype == np.int64
        assert np.all(ybar != y)
        assert ybar.min() >= 0 and ybar.max() < 4


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_each_other_class_equally_likely(num_classes):
    y = np.repeat(np.arange(num_classes), 6000)
    ybar = comp.complementary_labels(y, num_classes, seed=123)
    counts = comp.complementary_count_matrix(y, ybar, num_classes)
    assert np.all(np.diag(counts) == 0)
    for true_class in range(num_classes):
        row = np.delete(counts[true_class], true_class)
        if num_classes == 2:
            assert row.tolist() == [6000]
            continue
        # Uniform over the K-1 other classes: a chi-square test must not reject it.
        assert stats.chisquare(row).pvalue > 0.001


def test_chi_square_catches_a_biased_draw():
    # The same test on a deliberately skewed draw must reject, so the test above can fail.
    rng = np.random.default_rng(0)
    y = np.zeros(6000, dtype=int)
    ybar = rng.choice([1, 2, 3], p=[0.36, 0.32, 0.32], size=y.size)
    row = comp.complementary_count_matrix(y, ybar, 4)[0, 1:]
    assert stats.chisquare(row).pvalue < 0.001


def test_labels_deterministic_per_seed():
    y = np.arange(300) % 3
    a = comp.complementary_labels(y, 3, seed=7)
    b = comp.complementary_labels(y, 3, seed=7)
    c = comp.complementary_labels(y, 3, seed=8)
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


def test_labels_accept_column_and_float_labels():
    y = np.array([0, 1, 2, 1, 0])
    a = comp.complementary_labels(y, 3, seed=1)
    np.testing.assert_array_equal(comp.complementary_labels(y[:, None], 3, seed=1), a)
    np.testing.assert_array_equal(comp.complementary_labels(y.astype("float32"), 3, seed=1), a)
    assert comp.complementary_labels(np.array([], dtype=int), 3, seed=1).shape == (0,)


@pytest.mark.parametrize(
    ("y", "num_classes", "message"),
    [
        ([0, 1], 1, "at least one class other"),
        ([0, 0], 0, ">= 2"),
        ([0, 3], 3, r"\[0, 3\)"),
        ([-1, 0], 3, r"\[0, 3\)"),
        ([0.5, 1.0], 3, "integer"),
        ([[0, 1], [1, 0]], 3, "1-D"),
        (["a", "b"], 3, "integer"),
    ],
)
def test_labels_errors(y, num_classes, message):
    with pytest.raises(ValueError, match=message):
        comp.complementary_labels(y, num_classes, seed=0)


def test_count_matrix():
    y = [0, 0, 1, 2, 2, 2]
    ybar = [1, 2, 0, 0, 1, 1]
    expected = np.array([[0, 1, 1], [1, 0, 0], [1, 2, 0]])
    np.testing.assert_array_equal(comp.complementary_count_matrix(y, ybar, 3), expected)
    with pytest.raises(ValueError, match="same length"):
        comp.complementary_count_matrix([0, 1], [1], 3)


# --------------------------------------------------------------------------- losses: stability


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("label_form", ["int", "float_column"])
def test_finite_values_and_gradients_at_extreme_logits(name, label_form):
    ybar = EXTREME_YBAR if label_form == "int" else EXTREME_YBAR[:, None].astype("float32")
    value, grad = value_and_gradient(comp.get_loss(name, 3), ybar, EXTREME_LOGITS)
    assert np.all(np.isfinite(value)), (name, value)
    assert np.all(np.isfinite(grad)), (name, grad)
    assert grad.shape == EXTREME_LOGITS.shape


@pytest.mark.parametrize("name", comp.LOSS_NAMES)
def test_saturated_examples_keep_exact_values(name):
    # p_ybar = 1 up to float32 for [1e4, 0, -1e4] with ybar = 0: log(1 - p_ybar) = -1e4 exactly,
    # which a clipped probability would turn into a constant.
    values = loss_values(name, [0], [[1e4, 0.0, -1e4]])
    expected = {
        "article": 0.5,
        "pc": 2 * (1.0 + 1.0 + 0.5) - 3 + 2,
        "nn": 2e4 + 1e4,  # L_1 = l(f,1) = 1e4, L_2 = l(f,2) = 2e4, L_0 < 0 is clipped
        "forward": 1e4 + np.log(2),
        "scl_nl": 1e4,
        "scl_exp": np.e,
    }[name]
    np.testing.assert_allclose(values, expected, rtol=1e-6)


# --------------------------------------------------------------------------- losses: behaviour


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_loss_decreases_as_complementary_probability_decreases(name):
    rng = np.random.default_rng(0)
    base = rng.normal(size=4).astype("float32")
    ybar = 2
    values, probs = [], []
    for f_bar in np.linspace(4.0, -4.0, 17):
        logits = base.copy()
        logits[ybar] = f_bar
        values.append(float(np.squeeze(loss_values(name, [ybar], logits[None]))))
        probs.append(np.exp(np_log_softmax(logits))[ybar])
    assert np.all(np.diff(probs) < 0)
    assert np.all(np.diff(values) < 0), (name, values)


def test_article_formula():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3, size=(50, 4))
    ybar = rng.integers(0, 4, size=50)
    p_bar = np.exp(np_log_softmax(logits))[np.arange(50), ybar]
    ce = -np.log(p_bar)
    np.testing.assert_allclose(loss_values("article", ybar, logits), p_bar / (1 + p_bar), rtol=1e-5)
    np.testing.assert_allclose(
        loss_values("article", ybar, logits), 1 / (1 + np.exp(ce)), rtol=1e-5
    )


def test_pc_matches_the_authors_batch_formula():
    # Transcribed from Ishida et al.'s reference code: the sum of sigmoid(f_ybar - f_k) over the
    # whole batch and all k (k = ybar included), times (K-1)/N, minus K(K-1)/2, plus K-1.
    rng = np.random.default_rng(2)
    k, n = 5, 40
    logits = rng.normal(scale=2, size=(n, k))
    ybar = rng.integers(0, k, size=n)
    f_bar = logits[np.arange(n), ybar][:, None]
    matrix = 1 / (1 + np.exp(-(f_bar - logits)))
    expected = matrix.sum() * (k - 1) / n - k * (k - 1) / 2 + (k - 1)
    got = keras.ops.convert_to_numpy(comp.get_loss("pc", k)(ybar, logits.astype("float32")))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_scl_exp_formula():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3, size=(30, 3))
    ybar = rng.integers(0, 3, size=30)
    p_bar = np.exp(np_log_softmax(logits))[np.arange(30), ybar]
    np.testing.assert_allclose(loss_values("scl_exp", ybar, logits), np.exp(p_bar), rtol=1e-5)


@pytest.mark.parametrize("num_classes", [3, 4, 7])
def test_unbiased_estimator_averages_to_true_cross_entropy(num_classes):
    # Enumerate every complementary label: under uniform drawing the mean of the uncorrected
    # estimator over the K-1 of them is exactly the ordinary cross-entropy of the true label.
    rng = np.random.default_rng(num_classes)
    n = 25
    logits = rng.normal(scale=3, size=(n, num_classes)).astype("float32")
    y = rng.integers(0, num_classes, size=n)
    per_label = np.stack([loss_values("free", np.full(n, j), logits) for j in range(num_classes)])
    mask = np.arange(num_classes)[:, None] != y[None, :]
    average = (per_label * mask).sum(axis=0) / (num_classes - 1)
    cross_entropy = -np_log_softmax(logits)[np.arange(n), y]
    np.testing.assert_allclose(average, cross_entropy, rtol=1e-4, atol=1e-4)
    # The estimator itself differs from the cross-entropy for a single drawn label.
    assert not np.allclose(per_label[(y + 1) % num_classes, np.arange(n)], cross_entropy)


@pytest.mark.parametrize("num_classes", [2, 3, 6])
def test_forward_with_uniform_q_matches_closed_form(num_classes):
    rng = np.random.default_rng(4)
    n = 30
    logits = rng.normal(scale=4, size=(n, num_classes))
    ybar = rng.integers(0, num_classes, size=n)
    p = np.exp(np_log_softmax(logits))
    closed_form = -np.log((1 - p[np.arange(n), ybar]) / (num_classes - 1))
    q = (1 - np.eye(num_classes)) / (num_classes - 1)
    through_q = -np.log((p @ q)[np.arange(n), ybar])
    forward = loss_values("forward", ybar, logits)
    np.testing.assert_allclose(forward, closed_form, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(forward, through_q, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        loss_values("scl_nl", ybar, logits), forward - np.log(num_classes - 1), atol=1e-5
    )


def test_nn_equals_free_form_when_no_term_is_negative():
    # Near-uniform predictions and balanced complementary labels: every L_j = log(K)/K > 0.
    k = 3
    ybar = np.tile(np.arange(k), 4)
    logits = np.random.default_rng(5).normal(scale=0.01, size=(ybar.size, k)).astype("float32")
    risks = keras.ops.convert_to_numpy(comp.nn_class_risks(ybar, logits))
    assert np.all(risks > 0)
    free_mean = loss_values("free", ybar, logits).mean()
    np.testing.assert_allclose(risks.sum(), free_mean, rtol=1e-5)
    np.testing.assert_allclose(loss_values("nn", ybar, logits), free_mean, rtol=1e-5)


def test_nn_is_non_negative_where_free_form_is_negative():
    # A model confidently predicting away from each complementary label drives the free form
    # below zero; the correction clips the negative class terms.
    k = 3
    rng = np.random.default_rng(6)
    ybar = rng.integers(0, k, size=24)
    logits = 6 * (1 - 2 * np.eye(k)[ybar]) + rng.normal(size=(24, k))
    logits = logits.astype("float32")
    free_mean = loss_values("free", ybar, logits).mean()
    nn = float(loss_values("nn", ybar, logits))
    risks = keras.ops.convert_to_numpy(comp.nn_class_risks(ybar, logits))
    assert free_mean < 0
    assert nn >= 0
    np.testing.assert_allclose(nn, np.maximum(risks, 0).sum(), rtol=1e-5)
    np.testing.assert_allclose(risks.sum(), free_mean, rtol=1e-4)


def test_nn_non_negative_on_random_batches():
    rng = np.random.default_rng(7)
    for _ in range(20):
        k = int(rng.integers(2, 8))
        n = int(rng.integers(1, 40))
        logits = rng.normal(scale=rng.uniform(0.1, 20), size=(n, k)).astype("float32")
        assert float(loss_values("nn", rng.integers(0, k, size=n), logits)) >= 0


# --------------------------------------------------------------------------- Keras integration


def test_get_loss_errors():
    with pytest.raises(ValueError, match="'article', 'pc', 'nn', 'forward', 'scl_nl', 'scl_exp'"):
        comp.get_loss("sigmoid", 3)
    with pytest.raises(ValueError, match=">= 2"):
        comp.get_loss("nn", 1)
    with pytest.raises(ValueError, match="num_classes=3"):
        comp.get_loss("article", 4)(np.array([0]), np.zeros((1, 3), "float32"))


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_losses_serialise(name):
    loss = comp.get_loss(name, 4)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, comp.ComplementaryLoss)
    assert (restored.kind, restored.num_classes) == (name, 4)
    logits = np.random.default_rng(8).normal(size=(6, 4)).astype("float32")
    ybar = np.array([0, 1, 2, 3, 0, 1])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(ybar, logits)),
        keras.ops.convert_to_numpy(loss(ybar, logits)),
    )


@pytest.mark.parametrize("name", comp.LOSS_NAMES)
def test_losses_train_a_small_model(name):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 5)).astype("float32")
    ybar = comp.complementary_labels(rng.integers(0, 3, size=48), 3, seed=0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=comp.get_loss(name, 3), metrics=[comp.PseudoAccuracy()])
    history = model.fit(x, ybar[:, None], batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert 0.0 <= history.history["pseudo_accuracy"][-1] <= 1.0


# --------------------------------------------------------------------------- metrics


def test_pseudo_accuracy_metric_matches_numpy():
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(64, 4)).astype("float32")
    ybar = rng.integers(0, 4, size=64)
    metric = comp.PseudoAccuracy()
    metric.update_state(ybar[:, None].astype("float32"), scores)
    expected = 1 - np.mean(scores.argmax(axis=1) == ybar)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6)
    assert comp.pseudo_accuracy(scores, ybar) == pytest.approx(expected)
    restored = comp.PseudoAccuracy.from_config(metric.get_config())
    assert restored.name == "pseudo_accuracy"


def test_numpy_accuracies():
    y = np.array([0, 1, 2, 2])
    ybar = np.array([1, 2, 0, 1])
    pred = np.array([0, 2, 1, 2])
    assert comp.true_accuracy(pred, y) == pytest.approx(0.5)
    assert comp.pseudo_accuracy(pred, ybar) == pytest.approx(0.75)
    assert comp.true_accuracy(np.eye(3)[pred], y) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="as many predictions"):
        comp.true_accuracy(pred, y[:3])
    with pytest.raises(ValueError, match="shape"):
        comp.pseudo_accuracy(np.zeros((2, 2, 2)), ybar)


def test_expected_pseudo_accuracy_values():
    assert comp.expected_pseudo_accuracy(1.0, 3) == pytest.approx(1.0)
    assert comp.expected_pseudo_accuracy(0.0, 3) == pytest.approx(0.5)
    assert comp.expected_pseudo_accuracy(1 / 3, 3) == pytest.approx(2 / 3)  # chance: (K-1)/K
    assert comp.expected_pseudo_accuracy(0.0, 2) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        comp.expected_pseudo_accuracy(1.2, 3)


@pytest.mark.parametrize("num_classes", [3, 10])
@pytest.mark.parametrize("accuracy", [0.2, 0.7, 0.95])
def test_pseudo_accuracy_relation_in_simulation(num_classes, accuracy):
    rng = np.random.default_rng(10)
    n = 40_000
    y = rng.integers(0, num_classes, size=n)
    correct = rng.random(n) < accuracy
    # Wrong predictions are deliberately skewed (mostly the next class): the relation needs
    # only the complementary labels to be uniform and independent of the prediction.
    shift = np.where(rng.random(n) < 0.8, 1, rng.integers(1, num_classes, size=n))
    pred = np.where(correct, y, (y + shift) % num_classes)
    ybar = comp.complementary_labels(y, num_classes, seed=11)
    a = comp.true_accuracy(pred, y)
    expected = comp.expected_pseudo_accuracy(a, num_classes)
    standard_error = np.sqrt(expected * (1 - expected) / n)
    assert abs(comp.pseudo_accuracy(pred, ybar) - expected) < 4 * standard_error + 1e-9


# --------------------------------------------------------------------------- JAX backend


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from helpers import complementary as comp
    logits = np.array(json.loads(sys.argv[1]), dtype="float32")
    ybar = np.array(json.loads(sys.argv[2]))
    out = {}
    for name in comp.LOSS_NAMES + comp.EXTRA_LOSS_NAMES:
        loss = comp.get_loss(name, logits.shape[1])
        value, grad = jax.jit(jax.value_and_grad(lambda f: loss(ybar, f)))(logits)
        out[name] = [float(value), bool(np.isfinite(np.asarray(grad)).all())]
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_losses_on_jax_backend_match_and_stay_finite():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            JAX_SCRIPT,
            json.dumps(EXTREME_LOGITS.tolist()),
            json.dumps(EXTREME_YBAR.tolist()),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out.pop("tensorflow_imported") is False
    for name, (value, grad_finite) in out.items():
        assert grad_finite, name
        here = comp.get_loss(name, 3)(EXTREME_YBAR, EXTREME_LOGITS)
        np.testing.assert_allclose(value, keras.ops.convert_to_numpy(here), rtol=1e-5)


@pytest.mark.parametrize("p_target", [0.05, 0.5, 0.9, 0.999])
def test_gradients_with_respect_to_the_complementary_logit(p_target):
    # The docstrings' closed forms: article p(1-p)/(1+p)^2, scl_exp e^p p(1-p), scl_nl p.
    # The first two saturate as p_ybar -> 1; scl_nl (and forward) do not.
    f_bar = np.log(p_target / (1 - p_target) * 2)  # other two logits 0: p_ybar = p_target
    logits = np.array([[f_bar, 0.0, 0.0]], dtype="float32")
    p = p_target
    expected = {
        "article": p * (1 - p) / (1 + p) ** 2,
        "scl_exp": np.exp(p) * p * (1 - p),
        "scl_nl": p,
        "forward": p,
    }
    for name, value in expected.items():
        _, grad = value_and_gradient(comp.get_loss(name, 3), np.array([0]), logits)
        np.testing.assert_allclose(grad[0, 0], value, rtol=2e-3, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(grad.sum(), 0.0, atol=1e-5)  # softmax: shifts cancel


def test_stuck_fraction_counts_confidently_wrong_examples():
    from helpers.complementary import StuckFraction, stuck_hits

    logits = np.array([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [1.0, 0.0, 0.0], [200.0, 0.0, -5.0]])
    ybar = np.array([0, 0, 0, 0])  # p_bar: 0.9998, 0.0001, 0.58, 1.0
    hits = keras.ops.convert_to_numpy(stuck_hits(ybar, logits))
    assert hits.tolist() == [1.0, 0.0, 0.0, 1.0]
    metric = StuckFraction()
    metric.update_state(ybar, logits)
    assert float(metric.result()) == pytest.approx(0.5)
    assert StuckFraction.from_config(metric.get_config()).name == "stuck"
