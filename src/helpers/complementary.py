r"""Complementary labels: draw them, learn from them, and score models trained on them.

A complementary label :math:`\bar y` names a class the image does **not** belong to, drawn
uniformly from the :math:`K-1` classes other than the true one. Every loss here takes
``y_true`` = integer complementary labels (shape ``(N,)`` or ``(N, 1)``, any numeric dtype) and
``y_pred`` = **logits** :math:`f(x) \in \mathbb{R}^K`, never probabilities: each is written in
terms of :math:`\log p = f - \operatorname{logsumexp}(f)` so that no value or gradient is NaN or
infinite, even for logits of :math:`\pm 10^4`. Notation: :math:`p = \operatorname{softmax}(f)`,
:math:`\ell(f, j) = -\log p_j` (the ordinary cross-entropy for class :math:`j`), and

.. math:: \log(1 - p_{\bar y}) = \operatorname{logsumexp}_{j \ne \bar y} f_j
          - \operatorname{logsumexp}_j f_j,

which stays exact when :math:`p_{\bar y}` rounds to 1 (``log(1 - p)`` from a clipped ``p`` does not).
Only ``keras.ops`` is used, so the losses run on the TensorFlow and the JAX backend.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops
from numpy.typing import ArrayLike, NDArray

LOSS_NAMES = ("article", "pc", "nn", "forward", "scl_nl", "scl_exp")
"""The complementary losses compared in the book (``get_loss`` also knows ``"free"``)."""

EXTRA_LOSS_NAMES = ("free",)
"""Losses ``get_loss`` builds that the comparison leaves out (``free`` overfits by design)."""

_PACKAGE = "helpers.complementary"


# --------------------------------------------------------------------------- labels


def _check_num_classes(num_classes: int) -> None:
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2 (got {num_classes!r}): a complementary label "
            "needs at least one class other than the true one."
        )


def _as_labels(y: ArrayLike, num_classes: int, what: str = "y") -> NDArray[np.int64]:
    """``y`` as a 1-D int64 array, after checking every entry is a class index."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices, got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or np.any(arr != np.round(arr)):
            raise ValueError(f"{what} must hold integer class indices, got dtype {arr.dtype}.")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{what} must lie in [0, {num_classes}) for num_classes={num_classes}; "
            f"found values from {arr.min()} to {arr.max()}. Pass the right num_classes."
        )
    return arr.astype(np.int64)


def complementary_labels(y: ArrayLike, num_classes: int, seed: int) -> NDArray[np.int64]:
    """Draw one complementary label per true label, uniformly among the other classes.

    Adding an offset drawn uniformly from ``1 .. K-1`` (modulo ``K``) to the true label gives
    each of the ``K-1`` other classes probability ``1/(K-1)`` and never the true class.

    Parameters
    ----------
    y
        True class indices, shape ``(N,)`` (or ``(N, 1)``), values in ``[0, num_classes)``.
    num_classes
        Number of classes ``K`` (at least 2).
    seed
        Seed of the NumPy generator: the same seed and labels give the same draw.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(N,)`` with ``ybar[i] != y[i]``.

    Raises
    ------
    ValueError
        If ``num_classes < 2`` or a label is not an integer in ``[0, num_classes)``.
    """
    _check_num_classes(num_classes)
    labels = _as_labels(y, num_classes)
    offsets = np.random.default_rng(seed).integers(1, num_classes, size=labels.shape[0])
    return (labels + offsets) % num_classes


def complementary_count_matrix(
    y: ArrayLike, ybar: ArrayLike, num_classes: int
) -> NDArray[np.int64]:
    """Count matrix of true class (rows) by complementary class (columns).

    Its diagonal is zero for valid complementary labels; under uniform drawing each row is
    spread evenly over its off-diagonal cells.

    Parameters
    ----------
    y, ybar
        True and complementary class indices, same length, values in ``[0, num_classes)``.
    num_classes
        Number of classes ``K``.

    Returns
    -------
    numpy.ndarray
        int64 counts ``(K, K)``; entry ``[i, j]`` counts images of class ``i`` labelled "not ``j``".
    """
    _check_num_classes(num_classes)
    true = _as_labels(y, num_classes, "y")
    comp = _as_labels(ybar, num_classes, "ybar")
    if true.shape != comp.shape:
        raise ValueError(
            f"y and ybar must have the same length, got {true.shape} and {comp.shape}."
        )
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, comp), 1)
    return counts


# --------------------------------------------------------------------------- log-probabilities


def _complementary_one_hot(y_true: Any, logits: Any) -> Any:
    """One-hot rows of the complementary labels, shaped and typed like ``logits``."""
    ybar = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return ops.one_hot(ybar, ops.shape(logits)[-1], dtype=logits.dtype)


def _log_p_and_log_not_p(y_true: Any, logits: Any) -> tuple[Any, Any, Any]:
    r"""Return :math:`\log p` (N, K), :math:`\log p_{\bar y}` and :math:`\log(1-p_{\bar y})`."""
    logits = ops.cast(logits, "float32")
    onehot = _complementary_one_hot(y_true, logits)
    log_p = ops.log_softmax(logits, axis=-1)
    log_p_bar = ops.sum(onehot * log_p, axis=-1)
    # Leave the complementary class out of the sum instead of computing 1 - p: exact and finite
    # even when p_bar rounds to 1 (K >= 2 leaves at least one finite term).
    others = ops.where(onehot > 0, ops.full_like(logits, -np.inf), logits)
    log_not_p_bar = ops.logsumexp(others, axis=-1) - ops.logsumexp(logits, axis=-1)
    return log_p, log_p_bar, log_not_p_bar


# --------------------------------------------------------------------------- loss functions


def article_loss(y_true: Any, logits: Any) -> Any:
    r"""The original study's loss, per example.

    .. math:: \frac{1}{1 + \exp(\mathrm{CE}(\bar y, p))} = \frac{p_{\bar y}}{1 + p_{\bar y}}
              = \sigma(\log p_{\bar y})

    with :math:`\mathrm{CE}(\bar y, p) = -\log p_{\bar y}` and :math:`\sigma` the logistic
    function. Bounded in :math:`[0, 1/2]`, it only pushes :math:`p_{\bar y}` down. Its gradient
    with respect to the complementary logit,
    :math:`\partial/\partial f_{\bar y} = p_{\bar y}(1 - p_{\bar y}) / (1 + p_{\bar y})^2`,
    vanishes as :math:`p_{\bar y} \to 0` (done) and as :math:`p_{\bar y} \to 1`: it saturates,
    so a confidently wrong prediction is barely corrected.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The loss of every example, shape ``(N,)``.
    """
    _, log_p_bar, _ = _log_p_and_log_not_p(y_true, logits)
    return ops.sigmoid(log_p_bar)


def pc_loss(y_true: Any, logits: Any) -> Any:
    r"""Pairwise comparison with the sigmoid loss (Ishida et al., 2017), per example.

    .. math:: (K-1) \sum_{k=1}^{K} \sigma(f_{\bar y} - f_k) - \frac{K(K-1)}{2} + (K-1)

    The sum includes :math:`k = \bar y` (a constant :math:`1/2`), as in the authors' code; the
    constants do not change the gradient. It penalises the complementary class scoring above
    the others.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The loss of every example, shape ``(N,)``.
    """
    logits = ops.cast(logits, "float32")
    k = ops.shape(logits)[-1]
    onehot = _complementary_one_hot(y_true, logits)
    f_bar = ops.sum(onehot * logits, axis=-1, keepdims=True)
    pairwise = ops.sum(ops.sigmoid(f_bar - logits), axis=-1)
    return (k - 1) * pairwise - k * (k - 1) / 2 + (k - 1)


def free_loss(y_true: Any, logits: Any) -> Any:
    r"""The unbiased risk estimator without correction (Ishida et al., 2019), per example.

    .. math:: \sum_{j=1}^{K} \ell(f, j) - (K-1)\, \ell(f, \bar y)

    Averaged over the :math:`K-1` possible :math:`\bar y` it equals :math:`\ell(f, y)`, the
    ordinary cross-entropy of the true label; but it is unbounded below, so a flexible model
    drives it negative on a batch and overfits.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The loss of every example, shape ``(N,)``.
    """
    log_p, log_p_bar, _ = _log_p_and_log_not_p(y_true, logits)
    k = ops.shape(log_p)[-1]
    return -ops.sum(log_p, axis=-1) + (k - 1) * log_p_bar


def nn_class_risks(y_true: Any, logits: Any) -> Any:
    r"""The per-class terms :math:`L_j` of the unbiased estimator on one batch, shape ``(K,)``.

    .. math:: L_j = \frac{1}{N} \sum_{i=1}^{N} \ell(f(x_i), j)
              - (K-1)\, \bar\pi_j \frac{1}{N_j} \sum_{i:\, \bar y_i = j} \ell(f(x_i), j)

    with :math:`N_j` the number of examples whose complementary label is :math:`j` and
    :math:`\bar\pi_j = N_j / N` its batch frequency (the class prior of uniform complementary
    labels, estimated on the batch). The product :math:`\bar\pi_j / N_j = 1/N` keeps the term
    defined when :math:`N_j = 0`. :math:`\sum_j L_j` is the batch mean of :func:`free_loss`.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The terms :math:`L_1, \dots, L_K`, shape ``(K,)``.
    """
    log_p, _, _ = _log_p_and_log_not_p(y_true, logits)
    k = ops.shape(log_p)[-1]
    onehot = _complementary_one_hot(y_true, log_p)
    mean_all = -ops.mean(log_p, axis=0)
    mean_comp = -ops.sum(onehot * log_p, axis=0) / ops.cast(ops.shape(log_p)[0], log_p.dtype)
    return mean_all - (k - 1) * mean_comp


def nn_loss(y_true: Any, logits: Any) -> Any:
    r"""The non-negative corrected estimator (Ishida et al., 2019), a batch loss (scalar).

    .. math:: \sum_{j=1}^{K} \max(0, L_j)

    with :math:`L_j` from :func:`nn_class_risks`. Each :math:`L_j` estimates a non-negative
    partial risk, so clipping it at 0 stops the overfitting of :func:`free_loss`; when no
    :math:`L_j` is negative it equals the batch mean of :func:`free_loss`.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The batch's loss, a scalar.
    """
    return ops.sum(ops.maximum(nn_class_risks(y_true, logits), 0.0))


def forward_loss(y_true: Any, logits: Any) -> Any:
    r"""Forward correction with the uniform transition matrix (Yu et al., 2018), per example.

    .. math:: -\log\,(p^\top Q)_{\bar y} = -\log \frac{1 - p_{\bar y}}{K-1},
              \qquad Q_{jk} = \frac{1 - [j = k]}{K-1}

    the cross-entropy of the complementary label under the model's predicted distribution of
    complementary labels.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The loss of every example, shape ``(N,)``.
    """
    log_p, _, log_not_p_bar = _log_p_and_log_not_p(y_true, logits)
    k = ops.cast(ops.shape(log_p)[-1], log_p.dtype)
    return ops.log(k - 1) - log_not_p_bar


def scl_nl_loss(y_true: Any, logits: Any) -> Any:
    r"""Surrogate complementary loss, negative-log form (Chou et al., 2020), per example.

    .. math:: -\log(1 - p_{\bar y})

    It equals :func:`forward_loss` minus the constant :math:`\log(K-1)`. Its gradient
    :math:`\partial/\partial f_{\bar y} = p_{\bar y}` does not vanish as
    :math:`p_{\bar y} \to 1`: confident mistakes get the strongest push.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The loss of every example, shape ``(N,)``.
    """
    _, _, log_not_p_bar = _log_p_and_log_not_p(y_true, logits)
    return -log_not_p_bar


def scl_exp_loss(y_true: Any, logits: Any) -> Any:
    r"""Surrogate complementary loss, exponential form (Chou et al., 2020), per example.

    .. math:: \exp(p_{\bar y})

    Bounded in :math:`[1, e]`. Like the original's loss it saturates: its gradient
    :math:`\partial/\partial f_{\bar y} = e^{p_{\bar y}} p_{\bar y}(1 - p_{\bar y})` vanishes
    as :math:`p_{\bar y} \to 1`.

    Parameters
    ----------
    y_true
        Complementary labels, shape ``(N,)`` or ``(N, 1)``, any numeric dtype.
    logits
        Logits, shape ``(N, K)``.

    Returns
    -------
    tensor
        The loss of every example, shape ``(N,)``.
    """
    _, log_p_bar, _ = _log_p_and_log_not_p(y_true, logits)
    return ops.exp(ops.exp(log_p_bar))


_FUNCTIONS = {
    "article": article_loss,
    "pc": pc_loss,
    "nn": nn_loss,
    "forward": forward_loss,
    "scl_nl": scl_nl_loss,
    "scl_exp": scl_exp_loss,
    "free": free_loss,
}


# --------------------------------------------------------------------------- Keras losses


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ComplementaryLoss(keras.losses.Loss):  # type: ignore[misc]
    """A complementary-label loss as a Keras loss: ``y_true`` = complementary labels, ``y_pred`` = logits.

    Build it with :func:`get_loss`. The formula of each ``kind`` is in the docstring of the
    matching ``*_loss`` function. ``nn`` is a batch loss: every example of a batch carries the
    batch's value, so the default mean reduction returns it unchanged.
    """

    def __init__(self, kind: str, num_classes: int, **kwargs: Any) -> None:
        if kind not in _FUNCTIONS:
            raise ValueError(_unknown_loss_message(kind))
        _check_num_classes(num_classes)
        kwargs.setdefault("name", f"complementary_{kind}")
        super().__init__(**kwargs)
        self.kind = kind
        self.num_classes = int(num_classes)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        width = y_pred.shape[-1]
        if width is not None and width != self.num_classes:
            raise ValueError(
                f"The {self.kind!r} loss was built for {self.num_classes} classes but the model "
                f"outputs {width} logits: pass num_classes={width} to get_loss."
            )
        value = _FUNCTIONS[self.kind](y_true, y_pred)
        if self.kind == "nn":
            value = value * ops.ones((ops.shape(y_pred)[0],), dtype=value.dtype)
        return value

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(kind=self.kind, num_classes=self.num_classes)
        return config


def _unknown_loss_message(name: object) -> str:
    valid = ", ".join(repr(n) for n in LOSS_NAMES + EXTRA_LOSS_NAMES)
    return f"Unknown complementary loss {name!r}. Valid names: {valid}."


def get_loss(name: str, num_classes: int) -> keras.losses.Loss:
    """The Keras loss called ``name`` for ``num_classes`` classes.

    Parameters
    ----------
    name
        One of :data:`LOSS_NAMES` (or ``"free"``, the uncorrected unbiased estimator).
    num_classes
        Number of classes ``K``; must match the model's number of logits.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones) or ``num_classes < 2``.
    """
    if name not in _FUNCTIONS:
        raise ValueError(_unknown_loss_message(name))
    return ComplementaryLoss(name, num_classes)


# --------------------------------------------------------------------------- metrics


def pseudo_hits(y_true: Any, y_pred: Any) -> Any:
    """Per example, 1.0 when the predicted class differs from the complementary label, else 0.0."""
    ybar = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    return ops.cast(ops.not_equal(predicted, ybar), "float32")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PseudoAccuracy(keras.metrics.MeanMetricWrapper):  # type: ignore[misc]
    """The original study's accuracy: 1 minus the rate of predicting the complementary label.

    ``y_true`` are complementary labels; ``y_pred`` logits or probabilities (same argmax).
    Under uniform complementary labels a model of true accuracy ``a`` scores
    :func:`expected_pseudo_accuracy` ``(a, K)`` on average, and chance level is ``(K-1)/K``.
    """

    def __init__(self, name: str = "pseudo_accuracy", dtype: Any = None) -> None:
        super().__init__(fn=pseudo_hits, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


STUCK_THRESHOLD = 0.9  # a complementary class this probable: the article loss barely moves it


def stuck_hits(y_true: Any, y_pred: Any, threshold: float = STUCK_THRESHOLD) -> Any:
    """Per example, 1.0 when the model gives the complementary class ``p > threshold``.

    ``y_pred`` are logits. Such an example is confidently wrong, and the article loss,
    whose gradient ``p (1 - p) / (1 + p)^2`` vanishes as ``p -> 1``, hardly corrects it.
    """
    _, log_p_bar, _ = _log_p_and_log_not_p(y_true, y_pred)
    return ops.cast(ops.greater(log_p_bar, float(np.log(threshold))), "float32")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StuckFraction(keras.metrics.MeanMetricWrapper):  # type: ignore[misc]
    """Share of examples whose complementary class has probability above ``STUCK_THRESHOLD``.

    Recorded per epoch for every complementary run (``stuck``, and ``val_stuck`` on the
    validation split), to show where a loss stops learning from its mistakes.
    """

    def __init__(self, name: str = "stuck", dtype: Any = None) -> None:
        super().__init__(fn=stuck_hits, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


def _predicted_labels(pred: ArrayLike) -> NDArray[np.int64]:
    """Class indices from labels ``(N,)`` or from scores ``(N, K)`` (argmax)."""
    arr = np.asarray(pred)
    if arr.ndim == 2:
        return np.asarray(np.argmax(arr, axis=-1), dtype=np.int64)
    if arr.ndim == 1:
        return np.asarray(arr, dtype=np.int64)
    raise ValueError(f"pred must be labels (N,) or scores (N, K), got shape {arr.shape}.")


def _matching_rate(pred: ArrayLike, labels: ArrayLike) -> float:
    predicted = _predicted_labels(pred)
    target = np.asarray(labels).reshape(-1)
    if predicted.shape != target.shape or predicted.size == 0:
        raise ValueError(
            f"Need as many predictions as labels, and at least one: got {predicted.shape[0]} "
            f"predictions for {target.shape[0]} labels."
        )
    return float(np.mean(predicted == target))


def true_accuracy(pred: ArrayLike, y: ArrayLike) -> float:
    """Fraction of predictions equal to the true labels ``y``.

    Parameters
    ----------
    pred
        Predicted labels ``(N,)`` or scores ``(N, K)`` (logits or probabilities: argmax).
    y
        True labels ``(N,)`` or ``(N, 1)``.

    Returns
    -------
    float
        The accuracy, in [0, 1].
    """
    return _matching_rate(pred, y)


def pseudo_accuracy(pred: ArrayLike, ybar: ArrayLike) -> float:
    """1 minus the fraction of predictions equal to the complementary labels ``ybar``.

    Parameters
    ----------
    pred
        Predicted labels ``(N,)`` or scores ``(N, K)`` (logits or probabilities: argmax).
    ybar
        Complementary labels ``(N,)`` or ``(N, 1)``.

    Returns
    -------
    float
        The pseudo accuracy, in [0, 1]; chance level is ``(K-1)/K``.
    """
    return 1.0 - _matching_rate(pred, ybar)


def expected_pseudo_accuracy(a: float, num_classes: int) -> float:
    r"""Expected pseudo accuracy of a model with true accuracy ``a`` under uniform labels.

    .. math:: a + (1 - a)\,\frac{K-2}{K-1}

    A correct prediction never equals :math:`\bar y`; a wrong one is one of the :math:`K-1`
    other classes, and equals :math:`\bar y` with probability :math:`1/(K-1)`, whichever
    wrong class it is, because :math:`\bar y` is drawn independently of the image.

    Parameters
    ----------
    a
        True accuracy in [0, 1] (a NumPy array works elementwise too).
    num_classes
        Number of classes ``K`` (at least 2).

    Returns
    -------
    float
        The expected pseudo accuracy.
    """
    _check_num_classes(num_classes)
    if np.any(np.asarray(a) < 0) or np.any(np.asarray(a) > 1):
        raise ValueError(f"The true accuracy a must lie in [0, 1], got {a!r}.")
    return a + (1 - a) * (num_classes - 2) / (num_classes - 1)
