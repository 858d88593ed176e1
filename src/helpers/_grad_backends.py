"""The one backend-specific step of Grad-CAM: activation gradients in a single pass.

Everything else in :mod:`helpers.gradcam` is Keras/NumPy.  Here we only build, for one model,
one set of layers and one score, a compiled function

    step(x, class_index) -> (reduce(activations, gradients), logits, chosen_class)

that runs ONE forward and ONE backward pass for the whole batch and all layers.  Only gradients
with respect to the layer activations are taken, never with respect to the weights.  ``reduce``
(written with ``keras.ops``) runs inside the compiled function, so that on a GPU only the small
maps travel back to the host, not every activation and gradient.

``class_index`` holds one int per image; ``-1`` means "the class the model predicts", resolved
inside the pass from the logits so that no second forward pass is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

ScoreFn = Callable[[Any, Any], Any]
Reduce = Callable[[list[Any], list[Any]], Any]
StepOutput = tuple[Any, np.ndarray, np.ndarray]  # (reduced, as NumPy), logits, chosen class
Step = Callable[[np.ndarray, np.ndarray], StepOutput]


def make_step(
    model: keras.Model,
    targets: Sequence[Any],
    logits: Any,
    score_fn: ScoreFn,
    reduce: Reduce,
) -> Step:
    """Compile the gradient step for the active Keras backend.

    Parameters
    ----------
    model
        A flat functional model; its variables are read at call time, so later weight changes
        (``load_weights``, randomisation tests) are seen by a cached step.
    targets
        The symbolic outputs (``KerasTensor``) of the requested layers, in depth order.
    logits
        The symbolic pre-softmax output of ``model``.
    score_fn
        ``score_fn(logits, chosen_class) -> (N,)`` class scores, written with ``keras.ops``.
    reduce
        ``reduce(activations, gradients) -> nested lists of tensors`` (``keras.ops``), e.g.
        the CAM maps; its result comes back as NumPy arrays.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_step(model, targets, logits, score_fn, reduce)
    if backend == "jax":
        return _jax_step(model, targets, logits, score_fn, reduce)
    raise NotImplementedError(
        f"Grad-CAM supports the 'tensorflow' and 'jax' Keras backends, not {backend!r}. "
        "Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax before importing keras."
    )


def _choose_class(z: Any, class_index: Any) -> Any:
    """Replace each ``-1`` by the predicted class (argmax of the logits)."""
    predicted = keras.ops.cast(keras.ops.argmax(z, axis=-1), "int32")
    return keras.ops.where(class_index < 0, predicted, class_index)


def _tensorflow_step(
    model: keras.Model, targets: Sequence[Any], logits: Any, score_fn: ScoreFn, reduce: Reduce
) -> Step:
    import tensorflow as tf

    features = keras.Model(model.inputs, [*targets, logits])
    shape = (None, *model.inputs[0].shape[1:])

    # A fixed signature with a free batch size: one trace per (model, layers, score).
    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec(shape, tf.float32), tf.TensorSpec((None,), tf.int32)],
        reduce_retracing=True,
    )
    def step(x: Any, class_index: Any) -> Any:
        # The tape records the layers after each target because they read (watched)
        # variables; gradient() then only walks back from the score to the targets.
        with tf.GradientTape() as tape:
            *acts, z = features(x, training=False)
            tape.watch(acts)
            chosen = _choose_class(z, class_index)
            total = tf.reduce_sum(score_fn(z, chosen))
        grads = tape.gradient(total, acts)
        return reduce(acts, grads), z, chosen

    def run(x: np.ndarray, class_index: np.ndarray) -> StepOutput:
        out, z, chosen = step(tf.constant(x), tf.constant(class_index))
        return tf.nest.map_structure(lambda t: t.numpy(), out), z.numpy(), chosen.numpy()

    return run


def _jax_step(
    model: keras.Model, targets: Sequence[Any], logits: Any, score_fn: ScoreFn, reduce: Reduce
) -> Step:
    import jax
    import jax.numpy as jnp

    # JAX cannot differentiate with respect to an intermediate value, so each target gets a
    # zero "probe" added to it: d score / d probe = d score / d activation.  Chained
    # sub-models (inputs = image + earlier targets) let us insert the probes with public
    # Keras API, for any layers, not only those that cut the graph in two.
    inputs = list(model.inputs)
    segments = [keras.Model(inputs + list(targets[:i]), t) for i, t in enumerate(targets)]
    head = keras.Model(inputs + list(targets), logits)
    variables = model.variables

    def forward(values: Any, x: Any, probes: Any) -> Any:
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            acts: list[Any] = []
            for segment, probe in zip(segments, probes, strict=True):
                acts.append(segment([x, *acts], training=False) + probe)
            return acts, head([x, *acts], training=False)

    def total_score(probes: Any, values: Any, x: Any, class_index: Any) -> Any:
        acts, z = forward(values, x, probes)
        chosen = _choose_class(z, class_index)
        return jnp.sum(score_fn(z, chosen)), (acts, z, chosen)

    @jax.jit
    def step(values: Any, x: Any, class_index: Any) -> Any:
        shapes = jax.eval_shape(lambda: forward(values, x, [0.0] * len(segments))[0])
        probes = [jnp.zeros(s.shape, s.dtype) for s in shapes]
        grads, (acts, z, chosen) = jax.grad(total_score, has_aux=True)(
            probes, values, x, class_index
        )
        return reduce(acts, grads), z, chosen

    def run(x: np.ndarray, class_index: np.ndarray) -> StepOutput:
        values = [v.value for v in variables]
        out, z, chosen = step(values, jnp.asarray(x), jnp.asarray(class_index))
        return jax.tree.map(np.asarray, out), np.asarray(z), np.asarray(chosen)

    return run
