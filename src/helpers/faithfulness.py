"""Is a saliency map faithful to the model? Deletion and insertion curves (Petsiuk et al., 2018).

Deletion replaces the most salient pixels first, in ``steps`` equal steps, and follows the
score of the class explained: a faithful map makes it fall fast (low area under the curve).
Insertion starts from an image with no information and reveals the most salient pixels
first: a faithful map makes the score rise fast (high area).

Choices, all in the *preprocessed* space the model sees (Xception: [-1, 1]):

- what removed pixels become (``baseline`` for deletion, ``start`` for insertion): a number
  (``0.0`` is mid-grey, deletion's default, as RISE does with a constant), ``"blur"`` (a
  Gaussian blur of the image, sigma ``H / 20`` by default, insertion's default; a larger
  ``blur_sigma``, e.g. ``H / 8``, removes more), ``"mean"`` (the training-mean image, passed
  as ``mean_image``, see :func:`training_mean`) or any image. A baseline the model itself
  classifies confidently (a flat grey image often is) measures the jump to that class rather
  than the pixels' importance: :func:`baseline_probability` reports it.
- the score followed: ``"probability"`` of the class (default), ``"logit"`` (the class logit:
  ``predict_fn`` must then return logits), or ``"relative"`` (the probability divided by the
  intact image's, 1 at the intact end), so that models of different confidence compare.

Ties in a map (the zeros of a ReLU, a constant random baseline) are broken in a random but
seeded order, so that no corner of the image is systematically removed first.

"Beats random" means: a map's curve is better, image by image, than the *same model's* curve
for a random pixel order (:func:`random_reference`, averaged over a few orders): lower
deletion AUC, or higher insertion AUC, with a paired bootstrap interval over images that
excludes 0 (:func:`beats_random`, :func:`random_verdict`). A map that does not beat random
ranks pixels no better than chance for this model, whatever it looks like.
:func:`faithfulness_by_layer` runs all of it for Grad-CAM maps at several layers and
:func:`faithfulness_table` prints the lot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from scipy import integrate, ndimage

from helpers.agreement import Estimate, bootstrap_ci, format_interval

if TYPE_CHECKING:  # keras is only needed by faithfulness_by_layer; importing it is slow
    import keras

FloatArray = npt.NDArray[np.float64]
PredictFn = Callable[[npt.NDArray[np.float32]], npt.ArrayLike]
Fill = float | str | npt.ArrayLike
Score = Literal["probability", "logit", "relative"]
SCORES = ("probability", "logit", "relative")


@dataclass(frozen=True)
class Curve:
    """``scores[i, s]``: the class's score for image ``i`` with ``fractions[s]`` of its pixels
    removed (deletion) or revealed (insertion); ``score`` says which score (module docstring)."""

    fractions: FloatArray
    scores: FloatArray
    score: str = "probability"

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


def training_mean(images: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The mean image ``(H, W, C)`` of preprocessed training images ``(N, H, W, C)``: the
    ``"mean"`` baseline (``mean_image=``), the average of what the model was trained on."""
    x = np.asarray(images)
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"need preprocessed images (N, H, W, C), got shape {x.shape}")
    return np.asarray(x.mean(axis=0, dtype=np.float64), dtype=np.float32)


def _fill_image(
    images: npt.NDArray[np.float32],
    fill: Fill,
    blur_sigma: float | None,
    mean_image: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float32]:
    if isinstance(fill, str):
        if fill == "mean":
            if mean_image is None:
                raise ValueError(
                    "the 'mean' baseline needs mean_image=, e.g. training_mean(x_train)"
                )
            fill = mean_image
        elif fill != "blur":
            raise ValueError(f"unknown fill {fill!r}; use 'blur', 'mean', a number or an array")
        else:
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
    score: Score = "probability",
    intact: int = 0,
) -> Curve:
    """Pixels of rank < n_s come from ``target``, the rest from ``source``, at every step s.

    ``intact`` is the column holding the intact image, the denominator of ``"relative"``.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, not {score!r}")
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
                f"predict_fn must return probabilities shaped (batch, classes) (logits for "
                f"score='logit'); got {probs.shape} for a batch of {len(i)}"
            )
        if not ((cls >= 0) & (cls < probs.shape[1])).all():
            raise ValueError(f"class_index {cls} out of range for {probs.shape[1]} classes")
        scores[start : start + len(i)] = probs[np.arange(len(i)), cls[i]]
    out = scores.reshape(n, steps + 1)
    if score == "relative":  # an intact probability of 0 leaves the image's curve undefined
        ref = out[:, intact : intact + 1 or None]
        out = np.where(ref > 0, out / np.where(ref > 0, ref, 1.0), np.nan)
    return Curve(fractions, out, score)


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
    score: Score = "probability",
    mean_image: npt.ArrayLike | None = None,
) -> Curve:
    """Class score as the most salient pixels are replaced by ``baseline``.

    Parameters
    ----------
    predict_fn
        Preprocessed batch ``(B, H, W, C)`` -> probabilities ``(B, K)``, e.g.
        ``lambda x: model.predict(x, verbose=0)`` (logits for ``score="logit"``).
    images
        Preprocessed images ``(N, H, W, C)`` (or one ``(H, W, C)``).
    saliency
        Maps ``(N, H, W)`` at the image resolution; higher = more important.
    class_index
        Class whose score is followed, one int or one per image.
    steps
        The curve has ``steps + 1`` points, from 0 to 100% of the pixels.
    baseline
        Value of removed pixels: a number (0.0 = grey), an image (or one per image),
        ``"blur"`` or ``"mean"`` (with ``mean_image``).
    batch_size
        Perturbed images per ``predict_fn`` call; all images' steps share the batches.
    blur_sigma
        Gaussian sigma in pixels for "blur" (default ``H / 20``).
    seed
        Breaks ties in the maps.
    score
        ``"probability"``, ``"logit"`` or ``"relative"`` (divided by the intact image's
        probability: 1 at fraction 0).
    mean_image
        The ``(H, W, C)`` image of ``baseline="mean"`` (:func:`training_mean`).

    Returns
    -------
    Curve
        ``fractions (steps + 1,)`` and ``scores (N, steps + 1)``; ``.auc`` is lower = more faithful.
    """
    x, s, cls = _checked_inputs(images, saliency, class_index)
    fill = _fill_image(x, baseline, blur_sigma, mean_image)
    return _curve(predict_fn, x, fill, pixel_ranks(s, seed), cls, steps, batch_size, score, 0)


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
    score: Score = "probability",
    mean_image: npt.ArrayLike | None = None,
) -> Curve:
    """Class score as the most salient pixels are revealed on top of ``start``.

    Same arguments as :func:`deletion_curve`; ``start`` (default "blur": a Gaussian blur of
    each image) is the image at fraction 0, and ``"relative"`` divides by the intact image's
    probability, at fraction 1. Higher ``.auc`` = more faithful.
    """
    x, s, cls = _checked_inputs(images, saliency, class_index)
    fill = _fill_image(x, start, blur_sigma, mean_image)
    return _curve(predict_fn, fill, x, pixel_ranks(s, seed), cls, steps, batch_size, score, -1)


def baseline_probability(
    predict_fn: PredictFn,
    images: npt.ArrayLike,
    class_index: int | npt.ArrayLike | None = None,
    baseline: Fill = 0.0,
    *,
    blur_sigma: float | None = None,
    mean_image: npt.ArrayLike | None = None,
) -> FloatArray:
    """Class probability of the fully deleted image, i.e. of the baseline itself, ``(N,)``.

    With ``class_index`` (the class a curve follows) it is where a deletion curve ends; with
    ``None`` it is the probability of whatever class the baseline is predicted as, i.e. how
    confidently the model classifies the baseline (near ``1 / K`` is the hoped-for "nothing").
    ``predict_fn`` must return probabilities; other arguments as in :func:`deletion_curve`.
    """
    x = np.asarray(images, dtype=np.float32)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4:
        raise ValueError(f"need preprocessed images (N, H, W, C), got shape {x.shape}")
    probs = np.asarray(predict_fn(_fill_image(x, baseline, blur_sigma, mean_image)), np.float64)
    if class_index is None:
        return np.asarray(probs.max(axis=1), dtype=np.float64)
    cls = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (len(x),))
    return np.asarray(probs[np.arange(len(x)), cls], dtype=np.float64)


def random_reference(
    predict_fn: PredictFn,
    images: npt.ArrayLike,
    class_index: int | npt.ArrayLike,
    steps: int = 20,
    kind: Literal["deletion", "insertion"] = "deletion",
    fill: Fill | None = None,
    *,
    n_orders: int = 3,
    seed: int = 0,
    score: Score = "probability",
    batch_size: int = 64,
    blur_sigma: float | None = None,
    mean_image: npt.ArrayLike | None = None,
) -> Curve:
    """The curve of random pixel orders for this model, averaged over ``n_orders`` orders.

    The reference a map of the *same* model has to beat: order ``k`` is
    :func:`random_saliency` with seed ``seed + k`` (so ``n_orders=1`` is the single random
    map :func:`faithfulness_by_layer` always used). ``fill`` is the ``baseline`` (deletion)
    or ``start`` (insertion), by default theirs; the other arguments are as in
    :func:`deletion_curve`. Scores are averaged image by image.
    """
    if n_orders < 1:
        raise ValueError(f"n_orders must be >= 1, got {n_orders}")
    if kind not in ("deletion", "insertion"):
        raise ValueError(f"kind must be 'deletion' or 'insertion', not {kind!r}")
    x = np.asarray(images, dtype=np.float32)
    x = x[None] if x.ndim == 3 else x
    curve = deletion_curve if kind == "deletion" else insertion_curve
    if fill is None:
        fill = 0.0 if kind == "deletion" else "blur"
    curves = [
        curve(
            predict_fn,
            x,
            random_saliency(x.shape[:3], seed + k),
            class_index,
            steps,
            fill,
            batch_size=batch_size,
            blur_sigma=blur_sigma,
            seed=seed + k,
            score=score,
            mean_image=mean_image,
        )
        for k in range(n_orders)
    ]
    scores = np.mean([c.scores for c in curves], axis=0)
    return Curve(curves[0].fractions, scores, curves[0].score)


@dataclass(frozen=True)
class LayerFaithfulness:
    """Deletion and insertion curves of one layer's maps and, as the reference, of random
    pixel orders on the same images, for the same classes and the same model.

    ``baseline_probability`` and ``start_probability`` (``(N,)``, or ``None``) are the
    probabilities of the followed class for the deletion baseline and the insertion start.
    """

    deletion: Curve
    insertion: Curve
    random_deletion: Curve
    random_insertion: Curve
    baseline_probability: FloatArray | None = None
    start_probability: FloatArray | None = None


def faithfulness_by_layer(
    model: keras.Model,
    x: npt.ArrayLike,
    layers: Sequence[str],
    *,
    steps: int = 16,
    seed: int = 0,
    batch_size: int = 64,
    baseline: Fill = 0.0,
    start: Fill = "blur",
    score: Score = "probability",
    n_random: int = 1,
    blur_sigma: float | None = None,
    mean_image: npt.ArrayLike | None = None,
) -> dict[str, LayerFaithfulness]:
    """Deletion and insertion curves of the model's own Grad-CAM maps at several layers.

    Parameters
    ----------
    model
        A Keras classifier whose output is probabilities (its logits are found as for
        :func:`helpers.gradcam.grad_cam` when ``score="logit"``).
    x
        Preprocessed images ``(N, H, W, C)``.
    layers
        Layer names, as for :func:`helpers.gradcam.grad_cam`.
    steps, seed, batch_size
        As in :func:`deletion_curve`; ``seed`` also draws the random orders.
    baseline, start, score, blur_sigma, mean_image
        As in :func:`deletion_curve` and :func:`insertion_curve` (defaults: grey deletion,
        blurred insertion start, probability). E.g. ``baseline="blur", blur_sigma=12`` and
        ``score="relative"`` for models of different confidence.
    n_random
        Random orders averaged into this model's reference (:func:`random_reference`).

    Returns
    -------
    dict
        ``{layer: LayerFaithfulness}`` in the order of ``layers``. Every curve follows the
        class each image is predicted as; the random reference is shared by the layers.
    """
    import keras

    from helpers.gradcam import _logits_tensor, grad_cam  # here: the curves need no keras

    images = np.asarray(x, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(
            f"x must be preprocessed images (N, H, W, C), got shape {images.shape}; "
            "for one image pass x[None]"
        )
    if steps < 1 or batch_size < 1 or n_random < 1:  # before the Grad-CAM pass, not after it
        raise ValueError(
            f"steps, batch_size and n_random must be >= 1, got {steps}, {batch_size}, {n_random}"
        )
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, not {score!r}")
    # One pass for every layer: all maps explain the same classes, fixed before any pixel moves.
    cam = grad_cam(model, images, layers, class_index="predicted")
    cls = cam.class_index
    scorer = keras.Model(model.inputs, _logits_tensor(model)) if score == "logit" else model

    def predict(batch: npt.NDArray[np.float32]) -> npt.ArrayLike:
        return np.asarray(scorer.predict(batch, verbose=0, batch_size=batch_size))

    def probabilities(batch: npt.NDArray[np.float32]) -> npt.ArrayLike:
        return np.asarray(model.predict(batch, verbose=0, batch_size=batch_size))

    fills: dict[Literal["deletion", "insertion"], Fill] = {
        "deletion": baseline,
        "insertion": start,
    }

    def curves(saliency: npt.ArrayLike | None) -> tuple[Curve, Curve]:
        """The map's two curves, or (``None``) the random reference's."""
        found = []
        for kind, fill in fills.items():
            if saliency is None:
                curve = random_reference(
                    predict,
                    images,
                    cls,
                    steps,
                    kind,
                    fill,
                    n_orders=n_random,
                    seed=seed,
                    score=score,
                    batch_size=batch_size,
                    blur_sigma=blur_sigma,
                    mean_image=mean_image,
                )
            else:
                fn = deletion_curve if kind == "deletion" else insertion_curve
                curve = fn(
                    predict,
                    images,
                    saliency,
                    cls,
                    steps,
                    fill,
                    batch_size=batch_size,
                    blur_sigma=blur_sigma,
                    seed=seed,
                    score=score,
                    mean_image=mean_image,
                )
            found.append(curve)
        return found[0], found[1]

    # The random orders do not depend on the layer: their curves are computed once and shared.
    rand_del, rand_ins = curves(None)
    base_p, start_p = (
        baseline_probability(
            probabilities, images, cls, fill, blur_sigma=blur_sigma, mean_image=mean_image
        )
        for fill in fills.values()
    )
    out = {}
    for layer in cam.layers:
        dele, ins = curves(cam.map(layer))
        out[layer] = LayerFaithfulness(dele, ins, rand_del, rand_ins, base_p, start_p)
    return out


def beats_random(
    result: LayerFaithfulness,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    *,
    kind: Literal["deletion", "insertion"] = "deletion",
) -> Estimate:
    """Paired bootstrap, over images, of the map's AUC minus its random reference's.

    Pairing removes the image-to-image spread that both share (some images are just harder).
    Deletion (default): an interval entirely below 0 (``estimate.high < 0``) means the map
    beats a random order. Insertion: entirely *above* 0 (``estimate.low > 0``) does; see
    :func:`random_verdict` for a word that reads the sign right for both.
    """
    if kind not in ("deletion", "insertion"):
        raise ValueError(f"kind must be 'deletion' or 'insertion', not {kind!r}")
    curve, rand = (
        (result.deletion, result.random_deletion)
        if kind == "deletion"
        else (result.insertion, result.random_insertion)
    )
    if curve.scores.shape != rand.scores.shape:
        raise ValueError(
            f"the map and the random map need the same images and steps, got "
            f"{curve.scores.shape} and {rand.scores.shape}"
        )
    return bootstrap_ci(curve.auc - rand.auc, n_boot, ci, seed)


def random_verdict(
    result: LayerFaithfulness,
    kind: Literal["deletion", "insertion"] = "deletion",
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> str:
    """``"better"``, ``"worse"`` or ``"unclear"``: the map against its own model's random
    order, by :func:`beats_random`'s interval (``"unclear"`` where it contains 0, or is NaN)."""
    return verdict_of(beats_random(result, n_boot, ci, seed, kind=kind), kind)


def verdict_of(estimate: Estimate, kind: Literal["deletion", "insertion"] = "deletion") -> str:
    """``"better"``, ``"worse"`` or ``"unclear"`` for an interval of map AUC minus random AUC
    (however it was bootstrapped): the sign that wins depends on the curve."""
    sign = 1.0 if kind == "deletion" else -1.0  # a lower deletion / higher insertion AUC wins
    low, high = sorted((sign * estimate.low, sign * estimate.high))
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "unclear"


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
        Columns: deletion AUC of the map and of the random reference, their paired
        difference (3 digits: it can be small), whether it beats random (interval entirely
        below 0), insertion AUC of the map and of the random reference, their difference and
        the insertion verdict (:func:`random_verdict`), and the mean probability of the
        deletion baseline ("-" where unknown). Columns are aligned.
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
        "ins. map - random",
        "insertion",
        "baseline p",
    ]
    rows = []
    for name, layers in results.items():
        for layer, r in layers.items():
            diff = beats_random(r, seed=seed)
            ins = beats_random(r, seed=seed, kind="insertion")
            base = r.baseline_probability
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
                    format_interval(ins, digits=3),
                    random_verdict(r, "insertion", seed=seed),
                    "-" if base is None else f"{np.mean(base):.2f}",
                ]
            )
    if not rows:
        raise ValueError("results hold no (model, layer) pair; nothing to tabulate")
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
