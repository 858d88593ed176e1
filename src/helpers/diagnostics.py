"""Is a model's set of maps healthy, and who agrees with whom? Checks behind chapter 6's controls.

Two complementary runs whose maps agree near zero can mean that complementary training
really lands in different places, or that one run's maps are degenerate: all zero after
Grad-CAM's ReLU, constant, or a single hot pixel. :func:`map_health` measures that per layer,
and :func:`pairwise_agreement` compares every pair of models, so the whole matrix (not three
chosen pairs) shows whether one model is the odd one out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from helpers.agreement import rank_correlation, top_region_iou
from helpers.plots import DPI  # importing plots also lets IPython show bare Figures


@dataclass(frozen=True)
class MapHealth:
    """Per layer, over images: how many maps carry no ranking, and how spread the rest are.

    Attributes
    ----------
    zero
        Share of maps that are zero everywhere (Grad-CAM's ReLU removed everything).
    constant
        Share of maps with one value everywhere, zero included (no ranking exists).
    above_half
        Mean share of a map's cells above half its maximum (non-constant maps only):
        near ``1 / cells`` is one hot spot, near 1 a flat map.
    entropy
        Mean entropy of the map normalised to a distribution, divided by its maximum
        ``log(cells)`` (non-constant maps only): 0 is one cell, 1 is uniform.
    """

    zero: float
    constant: float
    above_half: float
    entropy: float


def map_health(maps: npt.ArrayLike) -> MapHealth:
    """:class:`MapHealth` of maps shaped ``(N, H, W)`` (non-negative, as Grad-CAM's are).

    Raises
    ------
    ValueError
        For maps that are not ``(N, H, W)``, empty, not finite, or negative.
    """
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3 or m.shape[0] == 0:
        raise ValueError(f"need maps shaped (N, H, W) with N >= 1, got {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("maps must be finite and non-negative (Grad-CAM maps after ReLU)")
    flat = m.reshape(len(m), -1)
    top, bottom = flat.max(axis=1), flat.min(axis=1)
    constant = top == bottom
    live = flat[~constant]
    if len(live):
        above = (live > 0.5 * live.max(axis=1, keepdims=True)).mean(axis=1).mean()
        p = live / live.sum(axis=1, keepdims=True)
        h = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1) / np.log(flat.shape[1])
        entropy = float(h.mean())
    else:
        above, entropy = np.nan, np.nan
    return MapHealth(
        zero=float((top == 0).mean()),
        constant=float(constant.mean()),
        above_half=float(above),
        entropy=entropy,
    )


def pairwise_agreement(
    maps: Mapping[str, Mapping[str, npt.ArrayLike]],
    layers: Sequence[str],
    metric: str = "spearman",
) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Mean agreement of every pair of models over ``layers`` and images.

    Parameters
    ----------
    maps
        ``{model: {layer: maps (N, H, W)}}``, the same images in the same order for all.
    layers
        The layers to average over (e.g. one band: shallow, middle or deep stages).
    metric
        ``"spearman"`` (rank correlation) or ``"iou"`` (top-20% IoU).

    Returns
    -------
    (names, matrix)
        The model names and a symmetric ``(M, M)`` matrix with ones on the diagonal; images
        where either map is constant are left out of a pair's mean (NaN if none is left).
    """
    measures = {"spearman": rank_correlation, "iou": top_region_iou}
    if metric not in measures:
        raise ValueError(f"metric must be one of {', '.join(measures)}, not {metric!r}")
    missing = [(name, layer) for name, m in maps.items() for layer in layers if layer not in m]
    if missing:
        raise ValueError(f"maps lack these (model, layer) pairs: {missing[:4]}")
    names = list(maps)
    out = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            values = np.concatenate(
                [measures[metric](maps[a][layer], maps[names[j]][layer]) for layer in layers]
            )
            out[i, j] = out[j, i] = np.nanmean(values) if np.isfinite(values).any() else np.nan
    return names, out


def depth_bands(layers: Sequence[str]) -> dict[str, list[str]]:
    """Consecutive layers in three bands: ``shallow``, ``middle`` and ``deep`` (the rest).

    For Xception's 13 residual stages: ``block2``-``block5``, ``block6``-``block9`` and
    ``block10`` to the last separable convolution.
    """
    if len(layers) < 3:
        raise ValueError(f"need at least 3 layers for three bands, got {len(layers)}")
    third = len(layers) // 3
    return {
        "shallow": list(layers[:third]),
        "middle": list(layers[third : 2 * third]),
        "deep": list(layers[2 * third :]),
    }


def health_table(maps: Mapping[str, Mapping[str, npt.ArrayLike]], layers: Sequence[str]) -> str:
    """:func:`map_health` of every model, averaged over ``layers`` (one band), as text.

    Spread (above half, entropy) averages the layers where some map is not constant.
    """
    lines = [f"{'model':<14}{'all zero':>10}{'constant':>10}{'above half':>12}{'entropy':>9}"]
    for name, per_layer in maps.items():
        h = np.array([dataclasses.astuple(map_health(per_layer[layer])) for layer in layers])
        spread = h[:, 2:][np.isfinite(h[:, 2:]).all(axis=1)]
        above, entropy = spread.mean(axis=0) if len(spread) else (np.nan, np.nan)
        zero, constant = h[:, :2].mean(axis=0)
        lines.append(f"{name:<14}{zero:>10.1%}{constant:>10.1%}{above:>12.2f}{entropy:>9.2f}")
    return "\n".join(lines)


def matrix_table(names: Sequence[str], matrix: npt.ArrayLike) -> str:
    """A :func:`pairwise_agreement` matrix as aligned text, models as rows and columns."""
    values = np.asarray(matrix, dtype=np.float64)
    width = max(14, *(len(n) + 2 for n in names))
    lines = [" " * width + "".join(f"{n:>{width}}" for n in names)]
    for name, row in zip(names, values, strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}.2f}" for v in row))
    return "\n".join(lines)


def plot_agreement_matrices(
    names: Sequence[str], matrices: Mapping[str, npt.ArrayLike], dpi: int = DPI
) -> Figure:
    """One heatmap per band (``{band: matrix}``), values written in the cells."""
    fig = Figure(figsize=(3.6 * len(matrices) + 0.8, 3.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    image = None
    for ax, (band, matrix) in zip(axes, matrices.items(), strict=True):
        values = np.asarray(matrix, dtype=np.float64)
        image = ax.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names if ax is axes[0] else [], fontsize=8)
        ax.set_title(band)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="mean rank correlation")
    return fig
