"""Is a saliency map faithful to the model? Deletion and insertion curves (Petsiuk et al., 2018).

Deletion replaces the most salient pixels first, in ``steps`` equal steps, and follows the
probability of the class explained: a faithful map makes it fall fast (low area under the
curve). Insertion starts from an image with no information and reveals the most salient
pixels first: a faithful map makes the probability rise fast (high area).

Choices, all in the *preprocessed* space the model sees (Xception: [-1, 1]):

- deletion fills removed pixels with ``baseline=0.0``, mid-grey, as RISE does with a constant;
- insertion starts from ``start="blur"``, a Gaussian blur of the image (sigma ``H / 20`` by
  default): a grey start would put the model far from any natural image, so the first
  revealed pixels would mostly measure the shock of leaving grey; pass ``start=0.0`` for grey.

Ties in a map (the zeros of a ReLU, a constant random baseline) are broken in a random but
seeded order, so that no corner of the image is systematically removed first.

:func:`faithfulness_by_layer` runs both curves for Grad-CAM maps at several layers, each next
to a random map's curves on the same images and classes; :func:`beats_random` asks whether a
map's deletion AUC is lower than the random map's for the same images (a paired bootstrap),
and :func:`faithfulness_table` prints the lot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import integrate, ndimage

from helpers.agreement import Estimate, bootstrap_ci, format_interval

if TYPE_CHECKING:  # keras is only needed by faithfulness_by_layer; importing it is slow
    import keras

FloatArray = npt.NDArray[np.float64]
PredictFn = Callable[[npt.NDArray[np.float32]], npt.ArrayLike]
Fill = float | str | npt.ArrayLike


@dataclass(frozen=True)
class Curve:
    """``scores[i, s]``: class probability for image ``i`` with ``fractions[s]`` of its pixels
    removed (deletion) or revealed (insertion)."""

    fractions: FloatArray
    scores: FloatArray

    @property
    def auc(self) -> FloatArray:
        """Area under each image's curve, ``(N,)``; see :func:`auc`."""
        return auc(self.fractions, self.scores)


def auc(fractions: npt.ArrayLike, scores: npt.ArrayLike) -> FloatArray:
    """Trapezoid area under ``scores`` (last axis) against ``fractions`` in [0, 1]."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1 or y.shape[-1] != x.size:
        raise ValueError(f"scores' last axis ({y.shape}) must match fractions ({x.shape})")
    return np.asarray(integrate.trapezoid(y, x, axis=-1), dtype=np.float64)


def random_saliency(shape: tuple[int, ...], seed: int = 0) -> FloatArray:
    """Uniform random maps in [0, 1): the baseline a real map has to beat (a random order)."""
    return np.random.default_rng(seed).random(shape)


def pixel_ranks(saliency: npt.ArrayLike, seed: int = 0) -> npt.NDArray[np.int64]:
    """Position of every pixel in the most-salient-first order, ``(N, H*W)``.

    Ties are broken by a seeded random permutation, never by position in the image.
    """
    s = np.asarray(saliency, dtype=np.float64)
    flat = s.reshape(len(s), -1)
    tiebreak = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((tiebreak, -flat), axis=-1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=-1)
    return ranks


def _fill_image(
    images: npt.NDArray[np.float32], fill: Fill, blur_sigma: float | None
) -> npt.NDArray[np.float32]:
    if isinstance(fill, str):
        if fill != "blur":
            raise ValueError(f"unknown fill {fill!r}; use 'blur', a number or an array")
        sigma = images.shape[1] / 20 if blur_sigma is None else blur_sigma
        blurred = ndimage.gaussian_filter(images, sigma=(0, sigma, sigma, 0))
        return np.asarray(blurred, dtype=np.float32)
    try:
        return np.broadcast_to(np.asarray(fill, dtype=np.float32), images.shape)
    except ValueError:
        raise ValueError(
            f"baseline/start of shape {np.shape(fill)} does not broadcast to the images "
            f"{images.shape}; give a number, an (H, W, C) image or one per image"
        ) from None


def _checked_inputs(
    images: npt.ArrayLike, saliency: npt.ArrayLike, class_index: int | npt.ArrayLike
) -> tuple[npt.NDArray[np.float32], FloatArray, npt.NDArray[np.int64]]:
    x = np.asarray(images, dtype=np.float32)
    s = np.asarray(saliency, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if s.ndim == 2:
        s = s[None]
    if x.ndim != 4 or s.shape != x.shape[:3]:
        raise ValueError(
            f"need preprocessed images (N, H, W, C) and maps (N, H, W) of the same size; got "
            f"{x.shape} and {s.shape}. Resize the maps to the image size first"
        )
    cls = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (len(x),))
    return x, s, cls


def _curve(
    predict_fn: PredictFn,
    source: npt.NDArray[np.float32],
    target: npt.NDArray[np.float32],
    ranks: npt.NDArray[np.int64],
    cls: npt.NDArray[np.int64],
    steps: int,
    batch_size: int,
) -> Curve:
    """Pixels of rank < n_s come from ``target``, the rest from ``source``, at every step s."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    n, h, w, _ = source.shape
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * h * w).astype(np.int64)
    img_idx, step_idx = np.divmod(np.arange(n * (steps + 1)), steps + 1)
    scores = np.empty(n * (steps + 1), dtype=np.float64)
    for start in range(0, len(img_idx), batch_size):
        i, s = img_idx[start : start + batch_size], step_idx[start : start + batch_size]
        mask = (ranks[i] < counts[s][:, None]).reshape(len(i), h, w, 1)
        batch = np.where(mask, target[i], source[i])
        probs = np.asarray(predict_fn(batch), dtype=np.float64)
        if probs.ndim != 2 or len(probs) != len(i):
            raise ValueError(
                f"predict_fn must return probabilities shaped (batch, classes); got "
                f"{probs.shape} for a batch of {len(i)}"
            )
        if not ((cls >= 0) & (cls < probs.shape[1])).all():
            raise ValueError(f"class_index {cls} out of range for {probs.shape[1]} classes")
        scores[start : start + len(i)] = probs[np.arange(len(i)), cls[i]]
    return Curve(fractions, scores.reshape(n, steps + 1))


def deletion_curve(
    predict_fn: PredictFn,
    images: npt.ArrayLike,
    saliency: npt.ArrayLike,
    class_index: int | npt.ArrayLike,
    steps: int = 20,
    baseline: Fill = 0.0,
    *,
    batch_size: int = 64,
    blur_sigma: float | None = None,
    seed: int = 0,
) -> Curve:
    """Class probability as the most salient pixels are replaced by ``baseline``.

    Parameters
    ----------
    predict_fn
        Preprocessed batch ``(B, H, W, C)`` -> probabilities ``(B, K)``, e.g.
        ``lambda x: model.predict(x, verbose=0)``.
    images
        Preprocessed images ``(N, H, W, C)`` (or one ``(H, W, C)``).
    saliency
        Maps ``(N, H, W)`` at the image resolution; higher = more important.
    class_index
        Class whose probability is followed, one int or one per image.
    steps
        The curve has ``steps + 1`` points, from 0 to 100% of the pixels.
    baseline
        Value of removed pixels: a number (0.0 = grey), an image (or one per image), or "blur".
    batch_size
        Perturbed images per ``predict_fn`` call; all images' steps share the batches.
    blur_sigma
        Gaussian sigma in pixels for "blur" (default ``H / 20``).
    seed
        Breaks ties in the maps.

    Returns
    -------
    Curve
        ``fractions (steps + 1,)`` and ``scores (N, steps + 1)``; ``.auc`` is lower = more faithful.
    """
    x, s, cls = _checked_inputs(images, saliency, class_index)
    fill = _fill_image(x, baseline, blur_sigma)
    return _curve(predict_fn, x, fill, pixel_ranks(s, seed), cls, steps, batch_size)


def insertion_curve(
    predict_fn: PredictFn,
    images: npt.ArrayLike,
    saliency: npt.ArrayLike,
    class_index: int | npt.ArrayLike,
    steps: int = 20,
    start: Fill = "blur",
    *,
    batch_size: int = 64,
    blur_sigma: float | None = None,
    seed: int = 0,
) -> Curve:
    """Class probability as the most salient pixels are revealed on top of ``start``.

    Same arguments as :func:`deletion_curve`; ``start`` (default "blur": a Gaussian blur of
    each image) is the image at fraction 0. Higher ``.auc`` = more faithful.
    """
    x, s, cls = _checked_inputs(images, saliency, class_index)
    fill = _fill_image(x, start, blur_sigma)
    return _curve(predict_fn, fill, x, pixel_ranks(s, seed), cls, steps, batch_size)


@dataclass(frozen=True)
class LayerFaithfulness:
    """Deletion and insertion curves of one layer's maps, and of a random map (the baseline)
    on the same images, for the same classes."""

    deletion: Curve
    insertion: Curve
    random_deletion: Curve
    random_insertion: Curve


def faithfulness_by_layer(
    model: keras.Model,
    x: npt.ArrayLike,
    layers: Sequence[str],
    *,
    steps: int = 16,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, LayerFaithfulness]:
    """Deletion and insertion curves of the model's own Grad-CAM maps at several layers.

    Parameters
    ----------
    model
        A Keras classifier whose output is probabilities.
    x
        Preprocessed images ``(N, H, W, C)``.
    layers
        Layer names, as for :func:`helpers.gradcam.grad_cam`.
    steps, seed, batch_size
        As in :func:`deletion_curve`; ``seed`` also draws the random map.

    Returns
    -------
    dict
        ``{layer: LayerFaithfulness}`` in the order of ``layers``. Every curve follows the
        class each image is predicted as; deletion fills with 0.0 (grey), insertion starts
        from a blur, the defaults of :func:`deletion_curve` and :func:`insertion_curve`.
    """
    from helpers.gradcam import grad_cam  # here, so that the curves alone need no keras

    images = np.asarray(x, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(
            f"x must be preprocessed images (N, H, W, C), got shape {images.shape}; "
            "for one image pass x[None]"
        )
    if steps < 1 or batch_size < 1:  # before the Grad-CAM pass, not after it
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    # One pass for every layer: all maps explain the same classes, fixed before any pixel moves.
    cam = grad_cam(model, images, layers, class_index="predicted")
    cls = cam.class_index

    def predict(batch: npt.NDArray[np.float32]) -> npt.ArrayLike:
        return np.asarray(model.predict(batch, verbose=0, batch_size=batch_size))

    def curves(saliency: npt.ArrayLike) -> tuple[Curve, Curve]:
        args = (predict, images, saliency, cls, steps)
        return (
            deletion_curve(*args, batch_size=batch_size, seed=seed),
            insertion_curve(*args, batch_size=batch_size, seed=seed),
        )

    # The random map does not depend on the layer: its curves are computed once and shared.
    rand_del, rand_ins = curves(random_saliency(images.shape[:3], seed))
    out = {}
    for layer in cam.layers:
        dele, ins = curves(cam.map(layer))
        out[layer] = LayerFaithfulness(dele, ins, rand_del, rand_ins)
    return out


def beats_random(
    result: LayerFaithfulness, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> Estimate:
    """Paired bootstrap, over images, of the map's deletion AUC minus the random map's.

    Pairing removes the image-to-image spread that both share (some images are just harder).
    An interval entirely below 0 (``estimate.high < 0``) means the map beats a random order.
    """
    if result.deletion.scores.shape != result.random_deletion.scores.shape:
        raise ValueError(
            f"the map and the random map need the same images and steps, got "
            f"{result.deletion.scores.shape} and {result.random_deletion.scores.shape}"
        )
    return bootstrap_ci(result.deletion.auc - result.random_deletion.auc, n_boot, ci, seed)


def faithfulness_table(
    results: Mapping[str, Mapping[str, LayerFaithfulness]], seed: int = 0
) -> str:
    """Plain-text table, one row per (model, layer), of :func:`faithfulness_by_layer` outputs.

    Parameters
    ----------
    results
        ``{model name: {layer: LayerFaithfulness}}``.
    seed
        Seed of every bootstrap (mean [95% interval] over images).

    Returns
    -------
    str
        Columns: deletion AUC of the map and of the random map, their paired difference
        (3 digits: it can be small), whether it beats random (interval entirely below 0),
        insertion AUC of the map and of the random map. Columns are aligned.
    """
    header = [
        "model",
        "layer",
        "deletion AUC",
        "random deletion",
        "map - random",
        "beats random",
        "insertion AUC",
        "random insertion",
    ]
    rows = []
    for name, layers in results.items():
        for layer, r in layers.items():
            diff = beats_random(r, seed=seed)
            rows.append(
                [
                    name,
                    layer,
                    format_interval(bootstrap_ci(r.deletion.auc, seed=seed)),
                    format_interval(bootstrap_ci(r.random_deletion.auc, seed=seed)),
                    format_interval(diff, digits=3),
                    "yes" if diff.high < 0 else "no",  # a NaN interval (one image) is "no"
                    format_interval(bootstrap_ci(r.insertion.auc, seed=seed)),
                    format_interval(bootstrap_ci(r.random_insertion.auc, seed=seed)),
                ]
            )
    if not rows:
        raise ValueError("results hold no (model, layer) pair; nothing to tabulate")
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
