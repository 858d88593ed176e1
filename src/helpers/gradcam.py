"""Grad-CAM and friends for a batch of images at several layers in ONE forward+backward pass.

For a layer with activations ``A`` (N, h, w, K) and the gradient ``g = d y^c / d A`` of the
class score (the logit by default, as in the Grad-CAM paper):

* Grad-CAM:   ``ReLU(sum_k mean_ij(g_k) A_k)``; the mean runs over each image's own pixels;
* HiResCAM:   ``ReLU(sum_k g_k * A_k)`` (no spatial pooling);
* Grad-CAM++: weights ``sum_ij alpha_ij ReLU(g_ij)`` with
  ``alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)``;
* Score-CAM:  gradient-free, weight ``k`` = softmax probability of the class for the image
  masked by the normalised, upsampled ``A_k`` (batched forward passes) - a check on the others.

Maps are upsampled bilinearly to the input size.  Only :mod:`helpers._grad_backends` knows
about TensorFlow or JAX; everything here is Keras/NumPy.  Display helpers (:func:`overlay`,
the original study's buggy recipe) are at the end.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

import keras
import matplotlib
import numpy as np
from keras import ops
from numpy.typing import ArrayLike, NDArray

from helpers import _grad_backends
from helpers.precision import float32_model

SHALLOW = "block2_add"
MIDDLE = "block9_add"
DEEP = "block14_sepconv2_act"
ORIGINAL_LAYERS = (SHALLOW, MIDDLE, DEEP)  # the original study's shallow / middle / deep
SCORES = ("logit", "softmax")
NORMALISATIONS = ("per_map", "shared", "raw")

Score = Literal["logit", "softmax"]
Normalisation = Literal["per_map", "shared", "raw"]
ClassChoice = str | int | ArrayLike | None
Floats = NDArray[np.float32]
CamMethod = Callable[[Any, Any], Any]  # (activations, gradients) -> maps, keras.ops


# ----------------------------------------------------------------------------- layers


def cam_layers(model: keras.Model) -> list[str]:
    """Names of the layers Grad-CAM can use (4-D ``(N, h, w, K)`` outputs), in depth order."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a layer with several outputs or no call yet
            continue
        if len(shape) == 4:
            names.append(layer.name)
    return names


def check_layers(model: keras.Model, layers: str | Sequence[str]) -> tuple[str, ...]:
    """Validate layer names (duplicates dropped, order kept).

    Raises
    ------
    ValueError
        For an unknown name or a layer without a 4-D output; the message lists the usable
        layers in depth order.
    """
    wanted = (layers,) if isinstance(layers, str) else tuple(layers)
    if not wanted:
        raise ValueError("Give at least one layer name, e.g. layers=ORIGINAL_LAYERS.")
    usable = cam_layers(model)
    unknown = [name for name in wanted if name not in usable]
    if unknown:
        raise ValueError(
            f"Grad-CAM cannot use layer(s) {unknown} of model {model.name!r}. "
            f"Layers with 4-D outputs, in depth order: {', '.join(usable)}"
        )
    return tuple(dict.fromkeys(wanted))


def residual_stages(model: keras.Model) -> list[str]:
    """Every residual stage of Xception: ``block2_add`` ... ``block13_add`` and ``DEEP``."""
    return list(check_layers(model, [*(f"block{i}_add" for i in range(2, 14)), DEEP]))


def depth_sorted(model: keras.Model, layers: Sequence[str]) -> list[str]:
    """``layers`` (checked) in the order they occur from input to output."""
    order = {name: i for i, name in enumerate(cam_layers(model))}
    return sorted(check_layers(model, layers), key=order.__getitem__)


def _logits_tensor(model: keras.Model) -> Any:
    """The symbolic pre-softmax output: layer ``logits``, or the input of a final softmax."""
    names = {layer.name for layer in model.layers}
    if "logits" in names:
        return model.get_layer("logits").output
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation) and activation == "softmax"
    ):
        return last.input
    if activation == "linear":
        return model.outputs[0]
    raise ValueError(
        f"Cannot find the logits of model {model.name!r}: name the pre-softmax Dense layer "
        "'logits', or end the model with a linear Dense followed by a separate softmax "
        "Activation (keras.applications: classifier_activation=None)."
    )


# ----------------------------------------------------------------------------- the pass


def _class_score(score: Score) -> Callable[[Any, Any], Any]:
    """``f(logits, class_index) -> (N,)``: the logit, or the softmax probability, of the class."""

    def logit(z: Any, c: Any) -> Any:
        return keras.ops.take_along_axis(z, c[:, None], axis=1)[:, 0]

    def softmax(z: Any, c: Any) -> Any:
        return logit(keras.ops.softmax(z, axis=-1), c)

    return logit if score == "logit" else softmax


_CACHE: OrderedDict[tuple[Any, ...], tuple[weakref.ref[keras.Model], Any]] = OrderedDict()
_CACHE_SIZE = 32

T = TypeVar("T")


def _cached(model: keras.Model, key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """Reuse what ``build`` made for this very model object (ids are checked via a weakref)."""
    full_key = (id(model), *key)
    hit = _CACHE.get(full_key)
    if hit is not None and hit[0]() is model:
        _CACHE.move_to_end(full_key)
        return hit[1]  # type: ignore[no-any-return]
    value = build()
    _CACHE[full_key] = (weakref.ref(model), value)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def gradient_step(
    model: keras.Model,
    layers: Sequence[str],
    score: Score,
    methods: Sequence[str] | None = None,
) -> _grad_backends.Step:
    """The compiled single-pass function for these layers (depth order), score and methods.

    It returns, per batch, ``(out, logits, chosen_class)``: ``out[layer][method]`` maps at
    the layer's resolution, computed inside the pass, or with ``methods=None`` the pair
    ``(activations, gradients)`` (lists in depth order).  Cached per model object, so the
    explorer and repeated calls reuse the traced/jitted function.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, not {score!r}.")
    layers = depth_sorted(model, layers)
    chosen = None if methods is None else tuple(_check_methods(methods))

    def reduce(acts: list[Any], grads: list[Any]) -> Any:
        if chosen is None:
            return list(acts), list(grads)
        return [[METHODS[m](a, g) for m in chosen] for a, g in zip(acts, grads, strict=True)]

    def build() -> _grad_backends.Step:
        targets = [model.get_layer(name).output for name in layers]
        logits = _logits_tensor(model)
        return _grad_backends.make_step(model, targets, logits, _class_score(score), reduce)

    return _cached(model, ("grad", tuple(layers), score, chosen), build)


def _check_methods(methods: Sequence[str]) -> list[str]:
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"methods must be a non-empty subset of {list(METHODS)}, got {list(methods)}."
        )
    return list(dict.fromkeys(methods))


def _check_input(model: keras.Model, x: ArrayLike) -> Floats:
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        raise ValueError(
            "x must be the model input (float, preprocessed), not uint8 pixels: "
            "pass helpers.data.preprocess(images)."
        )
    expected = tuple(model.inputs[0].shape[1:])
    if arr.ndim != 4 or any(
        e is not None and e != s for e, s in zip(expected, arr.shape[1:], strict=True)
    ):
        raise ValueError(f"x must have shape (N, *{expected}), got {arr.shape}.")
    if len(arr) == 0:
        raise ValueError("x holds no images.")
    return arr.astype(np.float32, copy=False)


def class_request(
    class_index: ClassChoice, n: int, labels: ArrayLike | None = None
) -> NDArray[np.int32]:
    """One requested class per image; ``-1`` stands for "the predicted class".

    ``class_index`` is ``"predicted"`` (or ``None``), ``"true"`` (needs ``labels``), one int
    for every image, or one int per image.
    """
    if class_index is None or (isinstance(class_index, str) and class_index == "predicted"):
        return np.full(n, -1, np.int32)
    if isinstance(class_index, str) and class_index == "true":
        if labels is None:
            raise ValueError('class_index="true" needs labels=<true class of each image>.')
        class_index = labels
    if isinstance(class_index, str):
        raise ValueError(f'class_index must be "predicted", "true" or ints, not {class_index!r}.')
    arr = np.asarray(class_index).reshape(-1)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"class indices must be integers, got dtype {arr.dtype}.")
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.shape != (n,):
        raise ValueError(f"Need one class index per image ({n}), got {arr.size}.")
    if (arr < 0).any():
        raise ValueError("Class indices must be >= 0.")
    return arr.astype(np.int32)


@dataclass(frozen=True)
class GradientPass:
    """Activations and class-score gradients of each layer, for a whole set of images."""

    activations: dict[str, Floats]  # layer -> (N, h, w, K)
    gradients: dict[str, Floats]  # layer -> (N, h, w, K), d score / d activations
    logits: Floats  # (N, num_classes)
    class_index: NDArray[np.int32]  # (N,) the class whose score was differentiated


def _requested_classes(
    model: keras.Model, class_index: ClassChoice, n: int, labels: ArrayLike | None
) -> NDArray[np.int32]:
    """:func:`class_request`, checked against the model's number of classes."""
    requested = class_request(class_index, n, labels)
    num_classes = int(_logits_tensor(model).shape[-1])
    if (requested >= num_classes).any():
        raise ValueError(f"Class indices must be < {num_classes} (the model's classes).")
    return requested


def _batches(
    model: keras.Model,
    x: ArrayLike,
    layers: Sequence[str],
    class_index: ClassChoice,
    labels: ArrayLike | None,
    score: Score,
    batch_size: int,
    methods: Sequence[str] | None,
) -> Any:
    """Yield ``(layers in depth order, step output, logits, classes)`` batch by batch.

    A bfloat16 model is explained through its float32 twin (same weights): its maps are
    computed from float32 activations and gradients.
    """
    model = float32_model(model)
    xs = _check_input(model, x)
    n = len(xs)
    requested = _requested_classes(model, class_index, n, labels)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    ordered = depth_sorted(model, layers)
    step = gradient_step(model, ordered, score, methods)
    size = min(batch_size, n)
    for start in range(0, n, size):
        xb, cb = xs[start : start + size], requested[start : start + size]
        m = len(xb)
        if m < size:  # pad: one compiled shape (JAX) for every batch
            xb = np.concatenate([xb, np.repeat(xb[-1:], size - m, axis=0)])
            cb = np.concatenate([cb, np.repeat(cb[-1:], size - m)])
        out, z, chosen = step(xb, cb)
        yield ordered, _first(out, m), z[:m], chosen[:m]


def _first(nested: Any, m: int) -> Any:
    """The first ``m`` rows of every array in nested lists / tuples (drops the padding)."""
    if isinstance(nested, list | tuple):
        return [_first(item, m) for item in nested]
    return nested[:m]


def compute_gradients(
    model: keras.Model,
    x: ArrayLike,
    layers: str | Sequence[str] = ORIGINAL_LAYERS,
    *,
    class_index: ClassChoice = "predicted",
    labels: ArrayLike | None = None,
    score: Score = "logit",
    batch_size: int = 32,
) -> GradientPass:
    """Activations and gradients of ``layers`` for all images, one pass per batch.

    Parameters
    ----------
    model
        A flat functional classifier (see :func:`_logits_tensor` for how logits are found).
    x
        Model input, float, already preprocessed, shape (N, H, W, C).
    layers
        Layer names (see :func:`cam_layers`).
    class_index
        ``"predicted"`` (default), ``"true"`` (with ``labels``), an int, or one int per image.
    labels
        True classes, for ``class_index="true"``.
    score
        ``"logit"`` (pre-softmax, as in the paper) or ``"softmax"`` (the original study).
    batch_size
        Images per pass; the last batch is padded to this size.
    """
    layers = check_layers(model, layers)
    parts: dict[str, tuple[list[Floats], list[Floats]]] = {name: ([], []) for name in layers}
    logits, chosen = [], []
    for ordered, (acts, grads), z, c in _batches(
        model, x, layers, class_index, labels, score, batch_size, None
    ):
        for name, a, g in zip(ordered, acts, grads, strict=True):
            parts[name][0].append(a)
            parts[name][1].append(g)
        logits.append(z)
        chosen.append(c)
    return GradientPass(
        activations={k: np.concatenate(v[0]) for k, v in parts.items()},
        gradients={k: np.concatenate(v[1]) for k, v in parts.items()},
        logits=np.concatenate(logits).astype(np.float32),
        class_index=np.concatenate(chosen).astype(np.int32),
    )


# ----------------------------------------------------------------------------- CAM methods


# Written with keras.ops so that they run inside the compiled pass (TF graph / jitted JAX);
# called on NumPy arrays they return backend tensors (keras.ops.convert_to_numpy them).


def _relu(x: Floats) -> Floats:
    return np.maximum(x, 0, dtype=np.float32)


def grad_cam_map(activations: Any, gradients: Any) -> Any:
    """Grad-CAM (N, h, w): channel weights = gradient averaged over each image's pixels."""
    weights = ops.mean(gradients, axis=(1, 2))  # axes 1, 2 only: never across the batch
    return ops.relu(ops.einsum("nhwk,nk->nhw", activations, weights))


def hires_cam_map(activations: Any, gradients: Any) -> Any:
    """HiResCAM (N, h, w): element-wise gradient x activation, summed over channels."""
    return ops.relu(ops.sum(activations * gradients, axis=-1))


def grad_cam_pp_map(activations: Any, gradients: Any) -> Any:
    """Grad-CAM++ (N, h, w), ``alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)`` (exp-score form)."""
    g2 = gradients * gradients
    denominator = 2 * g2 + ops.sum(activations, axis=(1, 2), keepdims=True) * g2 * gradients
    nonzero = ops.not_equal(denominator, 0)
    alpha = ops.where(nonzero, g2 / ops.where(nonzero, denominator, 1), 0)
    weights = ops.sum(alpha * ops.relu(gradients), axis=(1, 2))
    return ops.relu(ops.einsum("nhwk,nk->nhw", activations, weights))


METHODS: dict[str, CamMethod] = {
    "gradcam": grad_cam_map,
    "hirescam": hires_cam_map,
    "gradcam++": grad_cam_pp_map,
}


def _interpolation_matrix(n_in: int, n_out: int) -> Floats:
    """Bilinear weights (half-pixel centres, edges clamped), as TF / OpenCV resize."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = centres - low
    m = np.zeros((n_out, n_in), np.float64)
    m[np.arange(n_out), low] += 1 - frac
    m[np.arange(n_out), high] += frac
    return m.astype(np.float32)


def upsample(maps: ArrayLike, size: tuple[int, int]) -> Floats:
    """Bilinearly resize maps of shape ``(..., h, w)`` to ``(..., *size)``; NumPy, backend-free."""
    arr = np.asarray(maps, dtype=np.float32)
    if arr.shape[-2:] == tuple(size):
        return arr.copy()
    rows = _interpolation_matrix(arr.shape[-2], size[0])
    cols = _interpolation_matrix(arr.shape[-1], size[1])
    out: Floats = (rows @ arr @ cols.T).astype(np.float32)  # two matmuls, not a 4-index einsum
    return out


# ----------------------------------------------------------------------------- results


def _softmax(z: Floats) -> Floats:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: Floats = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


@dataclass(frozen=True)
class CamResult:
    """Raw (unnormalised, non-negative) maps of one model for one set of images.

    Attributes
    ----------
    maps
        ``maps[method][layer]`` is a float32 array (N, H, W): input size when upsampled,
        else the layer's own resolution.
    logits
        (N, num_classes) pre-softmax outputs.
    class_index
        (N,) the class each map explains.
    layers
        The layers, in the order asked for.
    score
        ``"logit"`` or ``"softmax"``.
    """

    maps: dict[str, dict[str, Floats]]
    logits: Floats
    class_index: NDArray[np.int32]
    layers: tuple[str, ...]
    score: str

    @property
    def probabilities(self) -> Floats:
        """(N, num_classes) softmax of the logits."""
        return _softmax(self.logits)

    @property
    def predicted(self) -> NDArray[np.int64]:
        """(N,) the predicted class of each image."""
        return np.asarray(self.logits.argmax(axis=-1), np.int64)

    def map(self, layer: str, method: str = "gradcam") -> Floats:
        """The raw maps (N, H, W) of one layer and method."""
        if method not in self.maps:
            raise KeyError(f"Method {method!r} was not computed; have {list(self.maps)}.")
        if layer not in self.maps[method]:
            raise KeyError(f"Layer {layer!r} was not computed; have {list(self.layers)}.")
        return self.maps[method][layer]

    def normalised(
        self, mode: Normalisation = "per_map", method: str = "gradcam"
    ) -> dict[str, Floats]:
        """``layer -> maps`` normalised together (``"shared"``: one scale over all layers)."""
        return normalise({layer: self.map(layer, method) for layer in self.layers}, mode)


def grad_cam(
    model: keras.Model,
    x: ArrayLike,
    layers: str | Sequence[str] = ORIGINAL_LAYERS,
    *,
    class_index: ClassChoice = "predicted",
    labels: ArrayLike | None = None,
    score: Score = "logit",
    methods: Sequence[str] = ("gradcam",),
    upsample_maps: bool = True,
    batch_size: int = 32,
) -> CamResult:
    """Grad-CAM (and HiResCAM / Grad-CAM++) maps of all images at all layers.

    One forward and one backward pass per batch serves every layer and method; only
    activation gradients are taken.  Arguments as in :func:`compute_gradients`, plus:

    Parameters
    ----------
    methods
        Any of ``METHODS``: ``"gradcam"``, ``"hirescam"``, ``"gradcam++"``.
    upsample_maps
        Resize maps bilinearly to the input size (``False``: keep each layer's resolution,
        which saves memory when maps are displayed later).

    Returns
    -------
    CamResult
        Raw maps; use :func:`normalise` or :meth:`CamResult.normalised` for display.
    """
    layers = check_layers(model, layers)
    methods = _check_methods(methods)
    size = (int(np.shape(x)[1]), int(np.shape(x)[2]))
    parts: dict[str, dict[str, list[Floats]]] = {m: {k: [] for k in layers} for m in methods}
    logits, chosen = [], []
    for ordered, out, z, c in _batches(
        model, x, layers, class_index, labels, score, batch_size, methods
    ):
        for name, per_method in zip(ordered, out, strict=True):
            for method, cam in zip(methods, per_method, strict=True):
                parts[method][name].append(upsample(cam, size) if upsample_maps else cam)
        logits.append(z)
        chosen.append(c)
    return CamResult(
        maps={m: {k: np.concatenate(v) for k, v in per.items()} for m, per in parts.items()},
        logits=np.concatenate(logits).astype(np.float32),
        class_index=np.concatenate(chosen).astype(np.int32),
        layers=layers,
        score=score,
    )


@overload
def normalise(maps: NDArray[Any], mode: Normalisation = ...) -> Floats: ...
@overload
def normalise(maps: list[NDArray[Any]], mode: Normalisation = ...) -> list[Floats]: ...
@overload
def normalise(maps: Mapping[str, NDArray[Any]], mode: Normalisation = ...) -> dict[str, Floats]: ...
def normalise(maps: Any, mode: Normalisation = "per_map") -> Any:
    """Scale maps for display; the container type (array, list or dict) is kept.

    Negative values become 0 (CAMs are ReLU'd); a map whose max is <= 0 becomes zeros,
    never NaN.

    Parameters
    ----------
    maps
        Arrays whose last two axes are (H, W), e.g. (N, H, W) per layer or model.
    mode
        ``"per_map"``: every 2-D map divided by its own max (the original study; hides
        differences in strength).  ``"shared"``: ONE scale, the max over everything passed
        in (pass all models and layers to compare them fairly).  ``"raw"``: unchanged.
    """
    if mode not in NORMALISATIONS:
        raise ValueError(f"mode must be one of {NORMALISATIONS}, not {mode!r}.")
    if isinstance(maps, Mapping):
        keys = list(maps)
        return dict(zip(keys, normalise([np.asarray(maps[k]) for k in keys], mode), strict=True))
    if not isinstance(maps, list | tuple):
        return normalise([np.asarray(maps)], mode)[0]
    arrays = [np.asarray(m, dtype=np.float32) for m in maps]
    if mode == "raw":
        return [a.copy() for a in arrays]
    if mode == "shared":
        top = max((float(a.max()) for a in arrays if a.size), default=0.0)
        return [_scaled(a, np.float32(top)) for a in arrays]
    return [_scaled(a, a.max(axis=(-2, -1), keepdims=True)) for a in arrays]


def _scaled(a: Floats, top: Any) -> Floats:
    """``clip(a, 0) / top`` with zeros wherever ``top <= 0``."""
    top = np.broadcast_to(np.asarray(top, np.float32), a.shape)
    out = np.zeros(a.shape, np.float32)
    np.divide(np.maximum(a, 0), top, out=out, where=top > 0)
    return out


# ----------------------------------------------------------------------------- Score-CAM


def _min_max(maps: Floats) -> Floats:
    """Each map (last two axes) scaled to [0, 1]; a constant map becomes zeros."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    return _scaled(maps - low, (maps - low).max(axis=(-2, -1), keepdims=True))


def _masked_probability(features: keras.Model, image: Floats, channels: Floats, c: int) -> Floats:
    """Class-``c`` probability of ``image`` masked by each min-max scaled, upsampled channel."""
    masks = _min_max(upsample(channels, image.shape[:2]))  # (k, H, W), a chunk at a time
    logits = np.asarray(features.predict_on_batch(image * masks[..., None])[1], np.float32)
    return _softmax(logits)[:, c]


def score_cam(
    model: keras.Model,
    x: ArrayLike,
    layer: str,
    *,
    class_index: ClassChoice = "predicted",
    labels: ArrayLike | None = None,
    batch_size: int = 64,
    upsample_maps: bool = True,
) -> Floats:
    """Score-CAM maps (N, H, W): gradient-free, a check on the gradient methods.

    Weight of channel ``k`` = softmax probability of the class for ``x * mask_k``, where
    ``mask_k`` is ``A_k`` upsampled to the input and min-max scaled to [0, 1]; the map is
    ``ReLU(sum_k w_k A_k)``.  Costs one forward pass per channel and image (batched by
    ``batch_size``), so use it on a few images.
    """
    (layer,) = check_layers(model, layer)
    model = float32_model(model)  # a bfloat16 model is scored in float32
    xs = _check_input(model, x)
    size = xs.shape[1:3]
    features = _cached(
        model,
        ("forward", layer),
        lambda: keras.Model(model.inputs, [model.get_layer(layer).output, _logits_tensor(model)]),
    )
    requested = _requested_classes(model, class_index, len(xs), labels)
    maps = []
    for image, wanted in zip(xs, requested, strict=True):
        acts, z = features.predict_on_batch(image[None])
        a = np.asarray(acts, np.float32)[0]
        c = int(np.argmax(z[0])) if wanted < 0 else int(wanted)
        channels = np.moveaxis(a, -1, 0)  # (K, h, w)
        weights = np.concatenate(
            [
                _masked_probability(features, image, channels[k : k + batch_size], c)
                for k in range(0, len(channels), batch_size)
            ]
        )
        maps.append(_relu(np.einsum("hwk,k->hw", a, weights)))
    cams = np.stack(maps).astype(np.float32)
    return upsample(cams, size) if upsample_maps else cams


# ----------------------------------------------------------------------------- display


def _colour(cam01: Floats, colormap: str) -> Floats:
    """RGB (matplotlib colour maps are RGB, unlike OpenCV's BGR ones) in [0, 1]."""
    return np.asarray(matplotlib.colormaps[colormap](cam01)[..., :3], np.float32)


def overlay(
    image01: ArrayLike, cam: ArrayLike, alpha: float = 0.4, colormap: str = "jet"
) -> Floats:
    """Blend a normalised CAM onto the un-preprocessed image: ``(1-alpha) img + alpha heat``.

    Parameters
    ----------
    image01
        RGB image(s) in [0, 1], (H, W, 3) or (N, H, W, 3) (``helpers.data.deprocess(x)``).
    cam
        Map(s) in [0, 1] (:func:`normalise` first), (h, w) or (N, h, w); upsampled to the
        image size BEFORE colouring, so colours stay on the colour map.
    alpha
        Weight of the heat map, in [0, 1].
    colormap
        A matplotlib colour map name.

    Returns
    -------
    numpy.ndarray
        float32 RGB in [0, 1], the shape of ``image01``.
    """
    img = np.asarray(image01, dtype=np.float32)
    heat = np.asarray(cam, dtype=np.float32)
    if img.shape[-1:] != (3,) or img.ndim != heat.ndim + 1:
        raise ValueError(
            f"Need image (…, H, W, 3) and cam (…, h, w); got {img.shape} and {heat.shape}."
        )
    if img.size and (img.min() < 0 or img.max() > 1):
        raise ValueError(
            "image01 must be in [0, 1]: use helpers.data.deprocess(x) or pixels / 255."
        )
    if heat.size and heat.max() > 1 + 1e-6:
        raise ValueError("cam must be in [0, 1]: normalise(cam, 'per_map' or 'shared') first.")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    heat = np.clip(upsample(heat, img.shape[-3:-1]), 0, 1)
    return np.clip((1 - alpha) * img + alpha * _colour(heat, colormap), 0, 1).astype(np.float32)


def original_recipe_overlay(
    image_uint8: ArrayLike, cam: ArrayLike, alpha: float = 0.4
) -> NDArray[np.uint8]:
    """The original study's visualisation, bugs included (for the errata; do not use).

    Give it ``cam`` from ``grad_cam(..., score="softmax", upsample_maps=False)``: bug 0 of
    the original is that it differentiated the softmax output (saturated gradients that
    mix in the other classes) instead of the logit.  Then, as the original did:

    1. pixels were divided by 255 twice, so the image is in [0, 1/255] (black);
    2. the map, scaled by its max to 0..255, was coloured at the layer's low resolution and
       only then resized (colours between cells leave the colour map);
    3. the 0-255 heat map was added (``heat * alpha + image``) to the 0-1 image, so the
       image contributes nothing visible;
    4. the sum was multiplied by 255 and cast to uint8, which wraps modulo 256
       (0..255 * alpha * 255 -> stripes); we make the wrap explicit so it is the same on
       every platform.

    Returns
    -------
    numpy.ndarray
        uint8 RGB (H, W, 3).
    """
    image = np.asarray(image_uint8)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("image_uint8 must be one uint8 RGB image (H, W, 3).")
    img = image.astype(np.float32) / 255.0 / 255.0  # bug 1
    heat = (255 * normalise(np.asarray(cam, np.float32), "per_map")).astype(np.uint8)
    coloured = 255 * _colour(
        heat.astype(np.float32) / np.float32(255), "jet"
    )  # bug 2: colour first ...
    coloured = np.moveaxis(upsample(np.moveaxis(coloured, -1, 0), image.shape[:2]), 0, -1)
    superimposed = coloured * alpha + img  # bug 3
    wrapped: NDArray[np.uint8] = (np.floor(superimposed * 255).astype(np.int64) % 256).astype(
        np.uint8
    )  # bug 4
    return wrapped


def recipe_comparison(
    model: keras.Model,
    image_uint8: ArrayLike,
    layer: str,
    *,
    class_index: ClassChoice = "predicted",
    preprocess: Callable[[ArrayLike], Floats] | None = None,
    alpha: float = 0.4,
) -> tuple[NDArray[np.uint8], Floats]:
    """The original recipe and the corrected one on the same image and layer.

    Returns ``(original, corrected)``: the buggy uint8 picture of
    :func:`original_recipe_overlay` (softmax gradients) and the float [0, 1] picture of
    :func:`overlay` (logit gradients, per-map scale, upsample then colour, RGB).
    ``preprocess`` defaults to :func:`helpers.data.preprocess`.
    """
    if preprocess is None:
        from helpers.data import preprocess as default_preprocess

        preprocess = default_preprocess
    image = np.asarray(image_uint8)
    x = preprocess(image[None])
    kw: dict[str, Any] = {"class_index": class_index, "upsample_maps": False}
    buggy = grad_cam(model, x, layer, score="softmax", **kw).map(layer)[0]
    fixed = grad_cam(model, x, layer, score="logit", **kw).map(layer)[0]
    original = original_recipe_overlay(image, buggy, alpha)
    return original, overlay(image / np.float32(255), normalise(fixed, "per_map"), alpha)


def classic_cam(
    model: keras.Model, activations: ArrayLike, class_index: ArrayLike, dense: str = "logits"
) -> Floats:
    """The original CAM (Zhou et al., 2016) at the last conv layer of a GAP + Dense network.

    ``sum_k W[k, c] A^k`` per image, with ``W`` the kernel of the ``dense`` layer and ``c``
    each image's class; no ReLU, no normalisation. ``activations`` is (N, h, w, K).
    """
    kernel = np.asarray(model.get_layer(dense).kernel, dtype=np.float32)  # (K, classes)
    weights = kernel[:, np.asarray(class_index).reshape(-1)].T  # (N, K)
    out: Floats = np.einsum("nhwk,nk->nhw", np.asarray(activations, np.float32), weights)
    return out


def deep_layer_equivalence(model: keras.Model, x: ArrayLike, layer: str = DEEP) -> dict[str, float]:
    """Show numerically that Grad-CAM at the layer feeding GAP + ``logits`` is the original CAM.

    There the class score is ``sum_k W[k, c] mean_ij A^k_ij``, so its gradient is
    ``W[k, c] / Z`` at every position (``Z = h * w``), and ``Z * Grad-CAM = ReLU(CAM)``.

    Returns
    -------
    dict
        ``gradient_spatial_spread``: the largest deviation of a gradient from its own spatial
        mean, relative to the largest gradient (0 when spatially constant);
        ``max_relative_difference``: ``max |Z * Grad-CAM - ReLU(CAM)| / max ReLU(CAM)``.
    """
    passed = compute_gradients(model, x, [layer])
    grads, acts = passed.gradients[layer], passed.activations[layer]
    spread = np.abs(grads - grads.mean(axis=(1, 2), keepdims=True)).max()
    gc = grad_cam(model, x, [layer], upsample_maps=False).map(layer)
    cam = np.maximum(classic_cam(model, acts, passed.class_index), 0)
    z = acts.shape[1] * acts.shape[2]
    top = max(float(cam.max()), 1e-12)
    return {
        "gradient_spatial_spread": float(spread / max(float(np.abs(grads).max()), 1e-12)),
        "max_relative_difference": float(np.abs(z * gc - cam).max() / top),
    }
