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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import integrate, ndimage

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
