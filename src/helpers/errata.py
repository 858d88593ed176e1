"""The original study's input-scaling bug, measured: what a second ``/255`` does to a model.

The original's ``preprocess_img`` divided the pixels by 255 once more before the model saw
them, so at Grad-CAM time the model received inputs 255 times smaller than in training
(if its training images were scaled once). That changes the *model's input*, not only the
displayed picture, so it can change the predictions and the maps. :func:`input_scaling_effect`
compares the two cases on the same images: inputs scaled as in training, and scaled again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from helpers.agreement import rank_correlation
from helpers.gradcam import grad_cam

SECOND_SCALE = 255.0  # the original's extra division


@dataclass(frozen=True)
class ScalingEffect:
    """How much scaling the inputs a second time changes a model's answers.

    Attributes
    ----------
    same_prediction
        Share of images whose predicted class is unchanged.
    accuracy
        True accuracy with inputs scaled as in training, and scaled twice (``None`` without
        labels).
    map_agreement
        Per layer, the mean rank correlation between the two cases' maps of the *same*
        class (each image's class as predicted from the correctly scaled input); NaN where
        every map of a case is constant.
    """

    same_prediction: float
    accuracy: tuple[float, float] | None
    map_agreement: dict[str, float]


def input_scaling_effect(
    model: Any,
    images_uint8: ArrayLike,
    layers: Sequence[str],
    labels: ArrayLike | None = None,
    preprocess: Callable[[ArrayLike], NDArray[np.float32]] | None = None,
) -> ScalingEffect:
    """Grad-CAM and predictions with inputs scaled as in training, and divided by 255 again.

    ``preprocess`` (default :func:`helpers.data.preprocess`) is the training scaling; the
    second case feeds ``preprocess(images) / 255``, the original's extra division.
    """
    if preprocess is None:
        from helpers.data import preprocess as default_preprocess

        preprocess = default_preprocess
    x = preprocess(images_uint8)
    right = grad_cam(model, x, layers, upsample_maps=False)
    again = grad_cam(model, x / np.float32(SECOND_SCALE), layers,
                     class_index=np.asarray(right.class_index), upsample_maps=False)  # fmt: skip
    once, twice = (np.asarray(r.logits).argmax(axis=1) for r in (right, again))
    accuracy = None
    if labels is not None:
        y = np.asarray(labels)
        accuracy = (float((once == y).mean()), float((twice == y).mean()))
    agreement = {}
    for layer in right.layers:
        values = rank_correlation(right.map(layer), again.map(layer))
        agreement[layer] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
    return ScalingEffect(
        same_prediction=float((once == twice).mean()),
        accuracy=accuracy,
        map_agreement=agreement,
    )
