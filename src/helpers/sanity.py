"""Sanity check for saliency maps: cascading randomisation (Adebayo et al., 2018).

The weights of a trained model are re-initialised from the top (logits) down, cumulatively,
one group of layers at a time. If the Grad-CAM maps of the randomised model still look like
those of the trained one, the maps show the image, not what the model learnt.

Everything happens on a clone: the model passed in is never touched. Re-initialising means
drawing every weight again from the layer's own initialiser (a trained BatchNorm gets back
gamma=1, beta=0 and its initial moving statistics), with seeds derived from ``seed`` and the
weight's name, so a run is reproducible on a given backend.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

_BLOCK = re.compile(r"^(block\d+)_")
GRANULARITIES = ("block", "layer")


@dataclass(frozen=True)
class RandomizationStep:
    """One step of :func:`cascading_randomization`.

    Attributes
    ----------
    group
        Name of the group re-initialised at this step (``"logits"``, ``"block14"``, ...).
    layers
        The layers of that group.
    reinitialized
        Every weight re-initialised so far, cumulative, as ``"layer/variable"``.
    model
        The randomised clone. The same object at every step, changed in place: compute what
        you need from it before asking for the next step.
    """

    group: str
    layers: tuple[str, ...]
    reinitialized: tuple[str, ...]
    model: keras.Model


def weight_names(layer: keras.layers.Layer) -> list[str]:
    """``"layer/variable"`` for every weight (trainable or not) of ``layer``."""
    return [f"{layer.name}/{v.name}" for v in layer.weights]


def randomization_groups(
    model: keras.Model, granularity: str = "block"
) -> list[tuple[str, list[str]]]:
    """The groups of layers with weights, top (output side) first.

    ``granularity="block"`` groups layers named ``blockN_...`` by N (shortcut convolutions
    included, as their names say which block they belong to); every other layer with weights
    (``logits``) is a group of its own. ``"layer"`` makes every layer with weights a group.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    groups: dict[str, list[str]] = {}
    for layer in reversed(model.layers):
        if not layer.weights:
            continue
        match = _BLOCK.match(layer.name) if granularity == "block" else None
        groups.setdefault(match.group(1) if match else layer.name, []).append(layer.name)
    return list(groups.items())


def _initializer_for(layer: keras.layers.Layer, variable_name: str) -> Any:
    """The initialiser the layer used for this variable (Keras names them after it)."""
    candidates = [f"{variable_name}_initializer"]
    if variable_name.endswith("_kernel"):  # SeparableConv2D: depthwise_kernel, pointwise_kernel
        candidates.append(variable_name.removesuffix("_kernel") + "_initializer")
    if isinstance(layer, keras.layers.DepthwiseConv2D) and variable_name == "kernel":
        candidates.insert(0, "depthwise_initializer")
    for attr in candidates:
        init = getattr(layer, attr, None)
        if isinstance(init, keras.initializers.Initializer):
            return init
    raise ValueError(
        f"cannot tell how {layer.name}/{variable_name} ({type(layer).__name__}) was "
        "initialised; pass explicit groups without this layer, or give it a standard initialiser"
    )


def reinitialize_layer(layer: keras.layers.Layer, seed: int = 0) -> list[str]:
    """Draw every weight of ``layer`` again from its initialiser; returns the names reset."""
    names = []
    for variable, name in zip(layer.weights, weight_names(layer), strict=True):
        init = _initializer_for(layer, variable.name)
        config = init.get_config()
        if "seed" in config:  # a fixed, weight-specific seed: reproducible, never shared
            config["seed"] = (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31
        fresh = type(init).from_config(config)
        variable.assign(fresh(shape=tuple(variable.shape), dtype=variable.dtype))
        names.append(name)
    return names


def clone_with_weights(model: keras.Model) -> keras.Model:
    """A new model with the same architecture, layer names and weight values."""
    clone = keras.models.clone_model(model)
    clone.set_weights([np.asarray(v) for v in model.weights])  # get_weights warns on JAX
    return clone


def cascading_randomization(
    model: keras.Model,
    *,
    granularity: str = "block",
    seed: int = 0,
    groups: Sequence[tuple[str, Sequence[str]]] | None = None,
) -> Iterator[RandomizationStep]:
    """Re-initialise a clone of ``model`` group by group from the top, cumulatively.

    Parameters
    ----------
    model
        The trained model (left untouched).
    granularity
        ``"block"`` (logits, block14, block13, ..., block1) or ``"layer"``; see
        :func:`randomization_groups`.
    seed
        Seed of the new weights.
    groups
        Explicit ``[(name, [layer names]), ...]`` in the order to randomise, instead of
        ``granularity``.

    Yields
    ------
    RandomizationStep
        After each group; the trained model itself is not yielded (it is step 0).
    """
    order = randomization_groups(model, granularity) if groups is None else groups
    clone = clone_with_weights(model)
    done: list[str] = []
    for name, layer_names in order:
        for layer_name in layer_names:
            done += reinitialize_layer(clone.get_layer(layer_name), seed)
        yield RandomizationStep(name, tuple(layer_names), tuple(done), clone)


def changed_weights(reference: keras.Model, other: keras.Model, atol: float = 0.0) -> list[str]:
    """Names (``"layer/variable"``) of the weights of ``other`` that differ from ``reference``.

    Layers are matched by name, so ``other`` can be a clone. ``atol=0``: any change counts.
    """
    ref = {
        name: v
        for layer in reference.layers
        for name, v in zip(weight_names(layer), layer.weights, strict=True)
    }
    changed = []
    for layer in other.layers:
        for name, v in zip(weight_names(layer), layer.weights, strict=True):
            if name not in ref:
                raise ValueError(f"{name} is not a weight of {reference.name!r}; compare clones")
            a = np.asarray(ref[name])
            b = np.asarray(v)
            if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=atol):
                changed.append(name)
    return changed


def randomization_curve(
    model: keras.Model,
    x: np.ndarray,
    layers: Sequence[str],
    *,
    class_index: Any = "predicted",
    labels: np.ndarray | None = None,
    granularity: str = "block",
    seed: int = 0,
) -> tuple[list[str], dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """How far Grad-CAM maps move as the weights are randomised from the top down.

    The classes explained are fixed from the trained model (its predictions, or
    ``class_index``), so every step answers the same question with other weights.

    Returns
    -------
    steps
        ``["trained", "logits", "block14", ...]``.
    correlation
        ``layer -> (len(steps),)`` mean Spearman correlation with the trained model's maps
        (a map wiped out to a constant counts as 0: it has certainly changed).
    maps
        ``layer -> [maps (N, h, w) per step]`` for drawing a small grid.
    """
    from helpers.agreement import rank_correlation
    from helpers.gradcam import grad_cam

    trained = grad_cam(
        model, x, layers, class_index=class_index, labels=labels, upsample_maps=False
    )
    fixed = trained.class_index
    steps, maps = ["trained"], {layer: [trained.map(layer)] for layer in layers}
    for step in cascading_randomization(model, granularity=granularity, seed=seed):
        result = grad_cam(step.model, x, layers, class_index=fixed, upsample_maps=False)
        steps.append(step.group)
        for layer in layers:
            maps[layer].append(result.map(layer))
    correlation = {
        layer: np.array(
            [np.mean(rank_correlation(m, maps[layer][0], undefined=0.0)) for m in maps[layer]]
        )
        for layer in layers
    }
    return steps, correlation, maps
