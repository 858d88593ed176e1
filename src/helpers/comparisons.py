"""Which models to compare, on which images: chapter 6's comparison design.

A comparison of two kinds of training ("regular vs article") is a set of model *pairs*. Its
value for an image is the mean agreement (:func:`helpers.agreement.agreement_by_layer`) over
those pairs, so every comparison keeps one value per image and two comparisons can still be
paired image by image (:func:`helpers.agreement.paired_difference`).

Models are named ``"<kind> s<seed>"``, e.g. ``"regular s0"`` or ``"article s1"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from helpers.agreement import Estimate, FloatArray, agreement_by_layer, format_interval

PerImage = dict[str, dict[str, FloatArray]]


def comparison_design(
    seeds: Sequence[int], kind: str = "complementary"
) -> dict[str, list[tuple[str, str]]]:
    """Which model pairs each comparison averages, for regular models and those of ``kind``.

    ``train_model`` seeds the initial weights with the run's seed, so a regular and a
    complementary model of the *same* seed start from the same weights. The comparison of
    the two kinds therefore uses only pairs of different seeds, like its controls; the
    same-seed pairs are a separate question ("same start, different labels").

    Returns
    -------
    dict
        ``"regular vs <kind>"``, ``"regular vs regular (control)"``,
        ``"<kind> vs <kind> (control)"`` and ``"same start: regular vs <kind>"``.

    Raises
    ------
    ValueError
        For fewer than two distinct seeds (no cross-seed pair exists), or ``kind="regular"``.
    """
    seeds = list(dict.fromkeys(seeds))
    if len(seeds) < 2:
        raise ValueError("the comparison needs models of at least two seeds of each kind")
    if kind == "regular":
        raise ValueError("kind names the other training, e.g. 'article'; not 'regular'")
    others = [(s, t) for s in seeds for t in seeds if s != t]
    within = [(s, t) for i, s in enumerate(seeds) for t in seeds[i + 1 :]]
    return {
        f"regular vs {kind}": [(f"regular s{s}", f"{kind} s{t}") for s, t in others],
        "regular vs regular (control)": [(f"regular s{s}", f"regular s{t}") for s, t in within],
        f"{kind} vs {kind} (control)": [(f"{kind} s{s}", f"{kind} s{t}") for s, t in within],
        f"same start: regular vs {kind}": [(f"regular s{s}", f"{kind} s{s}") for s in seeds],
    }


def true_class_maps(
    models: Mapping[str, Any], x: npt.ArrayLike, y: npt.ArrayLike, layers: Sequence[str]
) -> dict[str, dict[str, npt.NDArray[np.floating]]]:
    """``{model: {layer: maps (N, h, w)}}``: every model's Grad-CAM of the true class.

    The maps every comparison starts from: unsampled (each layer at its own resolution),
    for the true class, so two models are compared on the same question even where one of
    them predicts another class. ``x`` is preprocessed; ``y`` the true classes.
    """
    from helpers.gradcam import grad_cam

    maps = {}
    for name, model in models.items():
        result = grad_cam(model, x, layers, class_index="true", labels=y, upsample_maps=False)
        maps[name] = {layer: result.map(layer) for layer in layers}
    return maps


def mean_over_pairs(per_pair: Sequence[Mapping[str, Mapping[str, npt.ArrayLike]]]) -> PerImage:
    """Image by image, the mean of several pairs' :func:`agreement_by_layer` results.

    Each image keeps one value per comparison, so paired differences between comparisons
    still pair the same images. A pair whose value is NaN for an image (a constant map, or an
    image the pair does not keep) is left out of that image's mean.
    """
    if not per_pair:
        raise ValueError("need at least one pair's agreement")
    out: PerImage = {}
    for layer, metrics in per_pair[0].items():
        out[layer] = {}
        for metric in metrics:
            stack = np.stack([np.asarray(p[layer][metric], dtype=np.float64) for p in per_pair])
            finite = np.isfinite(stack)
            total = np.where(finite, stack, 0.0).sum(axis=0)
            count = finite.sum(axis=0)
            out[layer][metric] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def agreement_over_pairs(
    maps: Mapping[str, Mapping[str, npt.ArrayLike]],
    pairs: Sequence[tuple[str, str]],
    keep: Mapping[str, npt.ArrayLike] | None = None,
) -> PerImage:
    """A comparison's per-image agreement: the mean over its ``pairs`` of models.

    Parameters
    ----------
    maps
        ``{model: {layer: maps (N, H, W)}}``, the same images in the same order for all.
    pairs
        Model pairs, e.g. one entry of :func:`comparison_design`.
    keep
        Optional ``{model: bool (N,)}``: the images to use for each model (e.g. those it
        classifies correctly). A pair is compared on the images *both* its models keep; an
        image no pair keeps is NaN, and the estimates leave it out and count it.
    """
    missing = sorted({name for pair in pairs for name in pair} - set(maps))
    if missing:
        raise ValueError(f"no maps for {missing}; compute Grad-CAM for every model of the pairs")
    per_pair = []
    for a, b in pairs:
        result = agreement_by_layer(maps[a], maps[b])
        if keep is not None:
            both = np.asarray(keep[a], dtype=bool) & np.asarray(keep[b], dtype=bool)
            result = {
                layer: {m: np.where(both, v, np.nan) for m, v in metrics.items()}
                for layer, metrics in result.items()
            }
        per_pair.append(result)
    return mean_over_pairs(per_pair)


def agreement_table(
    summaries: Mapping[str, Mapping[str, Mapping[str, Estimate]]],
    layers: Mapping[str, str],
    metric: str = "spearman",
) -> str:
    """Mean and 95% interval per comparison (rows) and named layer (columns), as text.

    ``summaries`` maps a row label to a :func:`helpers.agreement.summarize_by_layer` result;
    ``layers`` maps a column title to a layer, e.g. ``{"shallow": "block2_add", ...}``.
    A cell reads ``0.45 [0.40, 0.50]``; images left out (undefined) show as ``n=120``.
    """
    width = max(len(label) for label in summaries) + 2
    head = "".join(f"{title:>24}" for title in layers)
    lines = [f"{'':<{width}}{head}"]
    for label, summary in summaries.items():
        cells = []
        for layer in layers.values():
            est = summary[layer][metric]
            n = f" n={est.n}" if est.n_dropped else ""
            cells.append(f"{format_interval(est)}{n}".rjust(24))
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines)
