"""Do two sets of saliency maps look at the same place? Per-image agreement and its uncertainty.

Two measures, each computed image by image on maps shaped ``(N, H, W)``:

- :func:`rank_correlation`, the Spearman correlation of the pixel values (ties get average
  ranks), which compares the whole ordering of the map;
- :func:`top_region_iou`, the intersection over union of the top-``fraction`` pixels of each
  map, which only asks whether the hottest regions overlap.

A constant map (all zeros happens: Grad-CAM's ReLU can remove everything) has no ranking and no
top region, so neither measure is defined for that image: both return ``undefined`` (NaN by
default, never a warning). :func:`bootstrap_ci` and :func:`mean_ci` drop NaNs and say how
many they dropped, so an undefined image is reported instead of silently counted as 0 or 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _paired_maps(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Both stacks of maps flattened to ``(N, pixels)``; a single 2-D map counts as N=1."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"the two sets of maps differ in shape: {x.shape} vs {y.shape}")
    if x.ndim == 2:
        x, y = x[None], y[None]
    if x.ndim != 3 or x.shape[1] * x.shape[2] < 2:
        raise ValueError(f"expected maps shaped (N, H, W) with H*W >= 2, got {x.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("maps contain NaN or inf; fix the maps (e.g. np.nan_to_num) first")
    return x.reshape(len(x), -1), y.reshape(len(y), -1)


def _is_constant(flat: FloatArray) -> BoolArray:
    return np.asarray(flat.max(axis=1) == flat.min(axis=1))


def rank_correlation(
    a: npt.ArrayLike, b: npt.ArrayLike, *, undefined: float = math.nan
) -> FloatArray:
    """Spearman rank correlation of two maps, image by image.

    Parameters
    ----------
    a, b
        Maps shaped ``(N, H, W)`` (or one ``(H, W)`` map each), same shape.
    undefined
        Value for an image where either map is constant (no ranking exists). NaN by default,
        so that the statistics helpers drop it and count it; pass 0.0 to count "no ranking"
        as "no agreement".

    Returns
    -------
    numpy.ndarray
        ``(N,)`` correlations in [-1, 1]; tied pixels get their average rank.
    """
    x, y = _paired_maps(a, b)
    rx = stats.rankdata(x, axis=1, method="average")
    ry = stats.rankdata(y, axis=1, method="average")
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    bad = _is_constant(x) | _is_constant(y)
    out = (rx * ry).sum(axis=1) / np.where(bad, 1.0, denom)
    return np.where(bad, undefined, np.clip(out, -1.0, 1.0))


def top_region(maps: npt.ArrayLike, fraction: float = 0.2) -> BoolArray:
    """Mask of the top-``fraction`` pixels of each map (ties decided by size, not position).

    Let ``k = round(fraction * H * W)`` and ``t`` the k-th largest value. The region is every
    pixel above ``t``, plus the pixels equal to ``t`` when adding them brings the region's
    size closer to ``k`` (or when it would otherwise be empty). So a map that is zero on 90%
    of the image marks its 10% non-zero pixels, never an arbitrary corner of zeros. A constant
    map has no top region (all False).

    Returns
    -------
    numpy.ndarray
        Boolean mask with the shape of ``maps`` (``(N, H, W)`` or ``(H, W)``).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    arr = np.asarray(maps, dtype=np.float64)
    flat, _ = _paired_maps(arr, arr)
    k = max(1, round(fraction * flat.shape[1]))
    t = -np.partition(-flat, k - 1, axis=1)[:, k - 1 : k]
    above = flat > t
    at_least = flat >= t
    n_above, n_at_least = above.sum(axis=1), at_least.sum(axis=1)
    take_ties = (np.abs(n_at_least - k) <= np.abs(n_above - k)) | (n_above == 0)
    mask = np.where(take_ties[:, None], at_least, above) & ~_is_constant(flat)[:, None]
    return mask.reshape(arr.shape)


def top_region_iou(
    a: npt.ArrayLike, b: npt.ArrayLike, fraction: float = 0.2, *, undefined: float = math.nan
) -> FloatArray:
    """Intersection over union of the :func:`top_region` of each map, image by image.

    ``undefined`` is returned where either map is constant, as in :func:`rank_correlation`.
    """
    x, y = _paired_maps(a, b)
    ma, mb = top_region(x[:, None, :], fraction)[:, 0], top_region(y[:, None, :], fraction)[:, 0]
    inter = (ma & mb).sum(axis=1)
    union = (ma | mb).sum(axis=1)
    bad = _is_constant(x) | _is_constant(y)
    return np.where(bad, undefined, inter / np.maximum(union, 1)).astype(np.float64)


def agreement_by_layer(
    maps_a: Mapping[str, npt.ArrayLike],
    maps_b: Mapping[str, npt.ArrayLike],
    fraction: float = 0.2,
    *,
    undefined: float = math.nan,
) -> dict[str, dict[str, FloatArray]]:
    """Per-image agreement of two models' maps at every layer.

    Parameters
    ----------
    maps_a, maps_b
        ``{layer name: maps (N, H, W)}`` for the same images, in the same order; same layers.

    Returns
    -------
    dict
        ``{layer: {"spearman": (N,), "iou": (N,)}}`` in the layer order of ``maps_a``.
    """
    if set(maps_a) != set(maps_b):
        raise ValueError(
            f"the two dicts hold different layers: {sorted(set(maps_a) ^ set(maps_b))}; "
            "compute Grad-CAM at the same layers for both models"
        )
    return {
        layer: {
            "spearman": rank_correlation(maps_a[layer], maps_b[layer], undefined=undefined),
            "iou": top_region_iou(maps_a[layer], maps_b[layer], fraction, undefined=undefined),
        }
        for layer in maps_a
    }


@dataclass(frozen=True)
class Estimate:
    """A mean with an interval; unpacks as ``mean, low, high = estimate``.

    ``n`` values were used, ``n_dropped`` NaNs left out. ``low``/``high`` are NaN when the
    interval cannot be estimated (fewer than two values).
    """

    mean: float
    low: float
    high: float
    n: int
    n_dropped: int
    ci: float
    method: str

    def __iter__(self) -> Iterator[float]:
        return iter((self.mean, self.low, self.high))


def _finite_values(values: npt.ArrayLike, ci: float) -> tuple[FloatArray, int]:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), e.g. 0.95; got {ci}")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no values given; an interval needs at least one value")
    if np.isinf(v).any():
        raise ValueError("values contain inf; only NaN (undefined) values are dropped")
    keep = ~np.isnan(v)
    return v[keep], int((~keep).sum())


def bootstrap_ci(
    values: npt.ArrayLike, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> Estimate:
    """Percentile-bootstrap interval of the mean (NaNs dropped and counted in ``n_dropped``).

    The same ``values`` and ``seed`` always give the same interval.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    v, dropped = _finite_values(values, ci)
    if v.size < 2:
        mean = float(v.mean()) if v.size else math.nan
        return Estimate(mean, math.nan, math.nan, int(v.size), dropped, ci, "bootstrap")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return Estimate(float(v.mean()), float(low), float(high), int(v.size), dropped, ci, "bootstrap")


def mean_ci(
    values: npt.ArrayLike, ci: float = 0.95, bounds: tuple[float, float] | None = None
) -> Estimate:
    """Student-t interval of the mean, for a few values (e.g. one accuracy per seed).

    With a single value (one seed) there is no interval: ``low`` and ``high`` are NaN and
    :func:`format_mean_ci` says "n=1, no interval". NaNs are dropped and counted.
    ``bounds`` clips the interval to the values a quantity can take (``(0, 1)`` for an
    accuracy: with two seeds a t-interval easily reaches past 100%).
    """
    v, dropped = _finite_values(values, ci)
    if v.size < 2:
        mean = float(v.mean()) if v.size else math.nan
        return Estimate(mean, math.nan, math.nan, int(v.size), dropped, ci, "t")
    half = stats.t.ppf((1 + ci) / 2, df=v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    m = float(v.mean())
    low, high = m - float(half), m + float(half)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Estimate(m, low, high, int(v.size), dropped, ci, "t")


def format_mean_ci(estimate: Estimate, digits: int = 2, *, percent: bool = False) -> str:
    """``"0.81 (95% CI 0.75 to 0.86, n=12)"``; ``percent=True`` shows 81.0% style numbers."""
    scale, unit = (100.0, "%") if percent else (1.0, "")

    def fmt(x: float) -> str:
        return f"{x * scale:.{digits}f}{unit}"

    dropped = f", {estimate.n_dropped} undefined left out" if estimate.n_dropped else ""
    if math.isnan(estimate.low):
        return f"{fmt(estimate.mean)} (n={estimate.n}, no interval{dropped})"
    level = f"{estimate.ci * 100:g}%"
    return (
        f"{fmt(estimate.mean)} ({level} CI {fmt(estimate.low)} to {fmt(estimate.high)}, "
        f"n={estimate.n}{dropped})"
    )


def format_interval(estimate: Estimate, digits: int = 2) -> str:
    """``"0.63 [0.58, 0.68]"``, the compact cell of a table; one value has no interval."""
    if math.isnan(estimate.low):
        return f"{estimate.mean:.{digits}f} [n={estimate.n}]"
    return f"{estimate.mean:.{digits}f} [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"


def summarize_by_layer(
    per_image: Mapping[str, Mapping[str, npt.ArrayLike]],
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Estimate]]:
    """:func:`bootstrap_ci` of every metric of :func:`agreement_by_layer`'s output."""
    return {
        layer: {name: bootstrap_ci(v, n_boot, ci, seed) for name, v in metrics.items()}
        for layer, metrics in per_image.items()
    }


def paired_difference(
    per_image_a: Mapping[str, Mapping[str, npt.ArrayLike]],
    per_image_b: Mapping[str, Mapping[str, npt.ArrayLike]],
    metric: str = "spearman",
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Per layer, the bootstrap mean of ``a - b`` over the same images (paired).

    Use it to compare an agreement with its control, e.g. regular-vs-complementary minus
    regular-vs-regular: an interval entirely below 0 means the two models agree *less* than
    two runs of the same training do, which the seed-to-seed baseline cannot explain.
    """
    out = {}
    for layer in per_image_a:
        a = np.asarray(per_image_a[layer][metric], dtype=np.float64)
        b = np.asarray(per_image_b[layer][metric], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"{layer}: need the same images for both, got {a.shape} and {b.shape}")
        out[layer] = bootstrap_ci(a - b, n_boot, ci, seed)
    return out


def layer_bands(
    summaries: Mapping[str, Mapping[str, Mapping[str, Estimate]]],
    layers: Sequence[str],
    metric: str = "spearman",
) -> dict[str, tuple[FloatArray, FloatArray, FloatArray]]:
    """``{pair: (means, lows, highs)}`` over ``layers``, from :func:`summarize_by_layer` outputs.

    ``summaries`` maps a label (e.g. "regular vs complementary") to one summary; the result
    feeds :func:`helpers.plots.band_plot`.
    """
    out = {}
    for label, summary in summaries.items():
        est = [summary[layer][metric] for layer in layers]
        out[label] = (
            np.array([e.mean for e in est]),
            np.array([e.low for e in est]),
            np.array([e.high for e in est]),
        )
    return out
