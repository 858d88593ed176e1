"""Agreement with an interval over models *and* images: a two-level bootstrap over seeds.

The image bootstrap of :mod:`helpers.agreement` asks "would the numbers move with other test
images?" for fixed models. With several seeds of each kind the verdict must also survive
other *models*. Here a comparison such as regular vs article is the mean, image by image,
over all cross-seed pairs (``regular sI`` vs ``article sJ``, ``I != J``), then over images;
its control is the same mean over all pairs of distinct regular seeds. The difference
(comparison minus control) gets a percentile interval from a two-level bootstrap. Every
replicate

1. draws the seeds of each kind with replacement (each kind apart; one regular draw serves
   the comparison and its control), then
2. draws the images with replacement, one draw shared by every pair, so pairs stay paired,

and recomputes the difference. **Duplicates**: a seed drawn twice counts as two models, so a
pair of two different seeds enters with weight ``count_i * count_j`` (the number of pairs of
draws); a pair of two draws of the *same* seed number is dropped, being a model compared with
itself (same kind) or a same-start pair (two kinds, see :func:`same_start`). A replicate left
with no pair (every regular draw the same seed) is undefined: it is left out and counted in
``n_undefined``. With 5 seeds that is 0.2% of the replicates; with 2 seeds it is half, a
sign that two seeds cannot carry an interval over models.

The per-pair, per-image agreement is computed once (:func:`pair_values`); a replicate is
then a weighted mean (two matrix products and an indexing), with no Spearman in the loop.
Models are named ``"<kind> s<seed>"`` (``"regular s0"``), as in :mod:`helpers.comparisons`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from helpers.agreement import (
    Estimate,
    FloatArray,
    format_interval,
    rank_correlation,
    top_region_iou,
)

METRICS = ("spearman", "iou")


def parse_model_name(name: str) -> tuple[str, int]:
    """``"regular s3"`` -> ``("regular", 3)``; the kind may contain spaces."""
    kind, sep, seed = name.rpartition(" s")
    if not (sep and kind and seed.isdigit()):
        raise ValueError(f"model name {name!r} is not '<kind> s<seed>', e.g. 'regular s0'")
    return kind, int(seed)


def seeds_of(names: Sequence[str] | Mapping[str, object], kind: str) -> tuple[int, ...]:
    """The sorted seeds of the models of ``kind`` among ``names`` (or a dict's keys)."""
    return tuple(sorted(s for k, s in map(parse_model_name, names) if k == kind))


@dataclass(frozen=True)
class PairValues:
    """Per-image agreement of every model of ``kind_a`` with every model of ``kind_b``, at one layer.

    ``values[i, j, n]`` compares ``"<kind_a> s<seeds_a[i]>"`` with ``"<kind_b> s<seeds_b[j]>"``
    on image ``n``; NaN where undefined (a constant map) and, for one kind, on the diagonal.
    """

    kind_a: str
    kind_b: str
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    values: FloatArray

    @property
    def n_images(self) -> int:
        """Number of images ``N``."""
        return int(self.values.shape[2])


def pair_values(
    maps: Mapping[str, Mapping[str, npt.ArrayLike]],
    kind_a: str,
    kind_b: str,
    metric: str = "spearman",
    *,
    layers: Sequence[str] | None = None,
    fraction: float = 0.2,
) -> dict[str, PairValues]:
    """Agreement of every pair of models of two kinds, image by image, computed once per pair.

    Parameters
    ----------
    maps
        ``{model name: {layer: maps (N, h, w)}}``, the same images in the same order for all
        (e.g. :func:`helpers.comparisons.true_class_maps` or :func:`helpers.map_store.load_maps`).
    kind_a, kind_b
        The kinds compared, e.g. ``"regular"`` and ``"article"``; the same kind twice gives a
        control (pairs of distinct seeds only, each computed once).
    metric
        ``"spearman"`` (:func:`helpers.agreement.rank_correlation`) or ``"iou"``
        (:func:`helpers.agreement.top_region_iou` of the top ``fraction``).
    layers
        Layers to compare (default: every layer of the first model of ``kind_a``).

    Returns
    -------
    dict
        ``{layer: PairValues}``. Pairs of two kinds include the same-start pairs (same seed),
        which :func:`difference_to_control` leaves out and :func:`same_start` uses.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    seeds_a, seeds_b = seeds_of(maps, kind_a), seeds_of(maps, kind_b)
    same = kind_a == kind_b
    if not seeds_a or not seeds_b or (same and len(seeds_a) < 2):
        raise ValueError(
            f"need models of {kind_a!r} and {kind_b!r} (two seeds for a control); "
            f"got {sorted(maps)}"
        )
    first = maps[f"{kind_a} s{seeds_a[0]}"]
    out = {}
    for layer in list(first) if layers is None else layers:
        n = len(np.asarray(first[layer]))
        values = np.full((len(seeds_a), len(seeds_b), n), np.nan)
        for i, s in enumerate(seeds_a):
            for j, t in enumerate(seeds_b):
                if same and j <= i:
                    continue
                a, b = maps[f"{kind_a} s{s}"][layer], maps[f"{kind_b} s{t}"][layer]
                v = (
                    rank_correlation(a, b)
                    if metric == "spearman"
                    else top_region_iou(a, b, fraction)
                )
                values[i, j] = v
                if same:
                    values[j, i] = v
        out[layer] = PairValues(kind_a, kind_b, seeds_a, seeds_b, values)
    return out


@dataclass(frozen=True)
class SeedImageEstimate:
    """A mean over model pairs and images, with a two-level (seeds, then images) interval.

    Unpacks as ``mean, low, high = estimate``. ``comparison`` and ``control`` are the two
    point estimates whose difference is ``mean`` (``control`` is NaN for a plain level).
    ``replicates`` holds the bootstrap values (NaN where undefined), so that layers can be
    pooled into bands (:func:`by_band`) with the same draws.
    """

    mean: float
    low: float
    high: float
    ci: float
    seeds: Mapping[str, tuple[int, ...]]
    n_images: int
    n_boot: int
    n_undefined: int
    comparison: float
    control: float
    replicates: FloatArray = field(repr=False, compare=False)

    def __iter__(self) -> Iterator[float]:
        return iter((self.mean, self.low, self.high))

    @property
    def n_seeds(self) -> dict[str, int]:
        """Seeds per kind, e.g. ``{"regular": 5, "article": 5}``."""
        return {kind: len(s) for kind, s in self.seeds.items()}

    def as_estimate(self) -> Estimate:
        """An :class:`helpers.agreement.Estimate` (``n`` = images), for the existing tables."""
        return Estimate(self.mean, self.low, self.high, self.n_images, 0, self.ci, "seeds+images")


def _counts(rng: np.random.Generator, n_boot: int, size: int) -> FloatArray:
    """``(n_boot, size)``: how often each of ``size`` seeds is drawn in ``size`` draws."""
    draws = rng.integers(0, size, (n_boot, size)) + size * np.arange(n_boot)[:, None]
    return (
        np.bincount(draws.ravel(), minlength=n_boot * size).reshape(n_boot, size).astype(np.float64)
    )


def _pair_means(
    pv: PairValues, wa: FloatArray, wb: FloatArray, images: npt.NDArray[np.int64], same: bool
) -> FloatArray:
    """``(B,)``: mean over ``images`` of the per-image weighted mean over pairs.

    Cross pairs (``same=False``) weigh ``wa[i] * wb[j]`` where the seeds differ; same-start
    pairs (``same=True``) weigh ``wa[i]`` where they match (one pair per draw of the seed).
    """
    match = np.array(pv.seeds_a)[:, None] == np.array(pv.seeds_b)[None, :]
    if same:
        weights = wa[:, :, None] * match
    else:
        weights = wa[:, :, None] * wb[:, None, :] * ~match
    flat = pv.values.reshape(-1, pv.n_images)
    finite = np.isfinite(flat)
    w = weights.reshape(len(weights), -1)
    num, den = w @ np.where(finite, flat, 0.0), w @ finite
    per_image = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    picked = np.take_along_axis(per_image, images, axis=1)
    ok = np.isfinite(picked)
    count = ok.sum(axis=1)
    total = np.where(ok, picked, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


Term = tuple[float, Mapping[str, PairValues], bool]  # (sign, values per layer, same-start?)


def _means(
    terms: Sequence[Term],
    layer: str,
    weights: Mapping[str, FloatArray],
    images: npt.NDArray[np.int64],
) -> list[FloatArray]:
    """Each term's :func:`_pair_means` at ``layer``, ``weights`` being seed counts per kind."""
    return [
        _pair_means(p[layer], weights[p[layer].kind_a], weights[p[layer].kind_b], images, same)
        for _, p, same in terms
    ]


def _interval(replicates: FloatArray, ci: float) -> tuple[float, float, int]:
    """Percentile interval of the defined replicates, and how many were undefined."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 2:
        return math.nan, math.nan, int(replicates.size - finite.size)
    low, high = np.quantile(finite, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high), int(replicates.size - finite.size)


def _bootstrap(
    terms: Sequence[Term], n_boot: int, ci: float, seed: int, shared_draw: bool = False
) -> dict[str, SeedImageEstimate]:
    """Sum of ``sign * pair mean`` over ``terms``, per layer, with its two-level interval."""
    if n_boot < 1 or not 0.0 < ci < 1.0:
        raise ValueError(f"need n_boot >= 1 and ci in (0, 1), got {n_boot} and {ci}")
    layers = list(terms[0][1])
    seeds: dict[str, tuple[int, ...]] = {}
    for _, per_layer, _ in terms:
        if list(per_layer) != layers:
            raise ValueError("the comparison and its control must hold the same layers")
        for pv in per_layer.values():
            for kind, s in ((pv.kind_a, pv.seeds_a), (pv.kind_b, pv.seeds_b)):
                if seeds.setdefault(kind, s) != s:
                    raise ValueError(
                        f"{kind!r} has seeds {seeds[kind]} in one part, {s} in another"
                    )
    n = terms[0][1][layers[0]].n_images
    if any(pv.n_images != n for _, p, _ in terms for pv in p.values()):
        raise ValueError("every pair must be compared on the same images")
    rng = np.random.default_rng(seed)
    counts: dict[str, FloatArray] = {}
    for kind, s in seeds.items():  # first level: the seeds of each kind (or one shared draw)
        counts[kind] = (
            next(iter(counts.values())) if shared_draw and counts else _counts(rng, n_boot, len(s))
        )
    images = rng.integers(0, n, (n_boot, n))  # second level: one image draw for every pair
    ones = {kind: np.ones((1, len(s))) for kind, s in seeds.items()}
    out = {}
    signs = np.array([sign for sign, _, _ in terms])
    for layer in layers:
        parts = [float(v[0]) for v in _means(terms, layer, ones, np.arange(n)[None, :])]
        if any(math.isnan(v) for v in parts):
            raise ValueError(f"{layer}: a comparison has no pair with a defined value (one seed?)")
        reps = np.tensordot(signs, np.array(_means(terms, layer, counts, images)), axes=1)
        low, high, n_undefined = _interval(reps, ci)
        out[layer] = SeedImageEstimate(
            mean=float(signs @ np.array(parts)),
            low=low,
            high=high,
            ci=ci,
            seeds=dict(seeds),
            n_images=n,
            n_boot=n_boot,
            n_undefined=n_undefined,
            comparison=parts[0],
            control=parts[1] if len(parts) > 1 else math.nan,
            replicates=reps,
        )
    return out


def seed_image_mean(
    values: Mapping[str, PairValues], *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> dict[str, SeedImageEstimate]:
    """Per layer, the mean agreement of one comparison (cross-seed pairs only), seeds and images
    resampled: e.g. the level of ``regular vs article`` or of the ``article`` control."""
    return _bootstrap([(1.0, values, False)], n_boot, ci, seed)


def difference_to_control(
    comparison: Mapping[str, PairValues],
    control: Mapping[str, PairValues],
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, SeedImageEstimate]:
    """Per layer, comparison minus control, with the two-level interval (module docstring).

    Parameters
    ----------
    comparison
        :func:`pair_values` of ``("regular", kind)``: every cross-seed pair is used (20 for
        5 seeds each); the same-start pairs are left out.
    control
        :func:`pair_values` of ``("regular", "regular")``: every pair of distinct seeds (10).
    n_boot, ci, seed
        Replicates, interval level, and the seed of the draws (the same for every layer, so
        that :func:`by_band` can pool layers).

    Returns
    -------
    dict
        ``{layer: SeedImageEstimate}``; an interval entirely below 0 means the two kinds agree
        less than two seeds of the regular training do, across models as well as images.
    """
    return _bootstrap([(1.0, comparison, False), (-1.0, control, False)], n_boot, ci, seed)


def same_start(
    values: Mapping[str, PairValues],
    *,
    minus_cross: bool = False,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, SeedImageEstimate]:
    """The same-start pairs (``regular sK`` vs ``<kind> sK``): their own row, apart from the rest.

    Only seeds that both kinds have are used; a replicate draws those seed numbers once, for
    both kinds (a same-start pair is one draw), then the images. With ``minus_cross=True``
    the estimate is same-start minus cross-seed agreement over the same draws: above 0, a
    shared start keeps the maps closer than two different starts do.
    """
    restricted = {}
    for layer, pv in values.items():
        if pv.kind_a == pv.kind_b:
            raise ValueError(
                "same-start pairs need two kinds, e.g. pair_values(maps, 'regular', 'article')"
            )
        common = sorted(set(pv.seeds_a) & set(pv.seeds_b))
        if len(common) < (2 if minus_cross else 1):
            raise ValueError(f"the two kinds share seeds {common}: too few for a same-start row")
        ia, ib = [pv.seeds_a.index(s) for s in common], [pv.seeds_b.index(s) for s in common]
        sub = pv.values[np.ix_(ia, ib)]
        restricted[layer] = PairValues(pv.kind_a, pv.kind_b, tuple(common), tuple(common), sub)
    terms: list[Term] = [(1.0, restricted, True)]
    if minus_cross:
        terms.append((-1.0, restricted, False))
    return _bootstrap(terms, n_boot, ci, seed, shared_draw=True)


def compare_to_control(
    maps: Mapping[str, Mapping[str, npt.ArrayLike]],
    kind: str,
    reference: str = "regular",
    metric: str = "spearman",
    *,
    layers: Sequence[str] | None = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, SeedImageEstimate]:
    """:func:`pair_values` then :func:`difference_to_control`, in one call: ``reference`` vs
    ``kind`` minus ``reference`` vs ``reference``, per layer."""
    comparison = pair_values(maps, reference, kind, metric, layers=layers)
    control = pair_values(maps, reference, reference, metric, layers=layers)
    return difference_to_control(comparison, control, n_boot=n_boot, ci=ci, seed=seed)


def layers_off_zero(estimates: Mapping[str, SeedImageEstimate]) -> dict[str, list[str]]:
    """``{"below": [...], "above": [...]}``: the layers whose interval lies entirely below or
    above 0 (a NaN interval is in neither); ``len()`` of each gives the counts."""
    return {
        "below": [layer for layer, e in estimates.items() if e.high < 0],
        "above": [layer for layer, e in estimates.items() if e.low > 0],
    }


def by_band(
    estimates: Mapping[str, SeedImageEstimate], bands: Mapping[str, Sequence[str]]
) -> dict[str, SeedImageEstimate]:
    """Per band (e.g. :func:`helpers.diagnostics.depth_bands`), the mean over its layers.

    The interval comes from the mean of the layers' replicates, draw by draw, so it needs
    estimates from one call (the same draws at every layer), not intervals averaged.
    """
    out = {}
    for band, layers in bands.items():
        parts = [estimates[layer] for layer in layers]
        if not parts:
            raise ValueError(f"band {band!r} has no layer")
        first = parts[0]
        if any(
            (e.n_boot, e.ci, dict(e.seeds)) != (first.n_boot, first.ci, dict(first.seeds))
            for e in parts
        ):
            raise ValueError(f"band {band!r}: the layers come from different bootstrap calls")
        reps = np.mean([e.replicates for e in parts], axis=0)
        low, high, n_undefined = _interval(reps, first.ci)
        out[band] = SeedImageEstimate(
            mean=float(np.mean([e.mean for e in parts])),
            low=low,
            high=high,
            ci=first.ci,
            seeds=first.seeds,
            n_images=first.n_images,
            n_boot=first.n_boot,
            n_undefined=n_undefined,
            comparison=float(np.mean([e.comparison for e in parts])),
            control=float(np.mean([e.control for e in parts])),
            replicates=reps,
        )
    return out


def seed_table(rows: Mapping[str, Mapping[str, SeedImageEstimate]], columns: Sequence[str]) -> str:
    """Text table, ``mean [low, high]`` per row label and column (layer or band), and a last
    line giving the seeds per kind and the images the intervals rest on."""
    width = max(len(label) for label in rows) + 2
    lines = [" " * width + "".join(f"{c:>24}" for c in columns)]
    for label, per in rows.items():
        cells = "".join(format_interval(per[c].as_estimate()).rjust(24) for c in columns)
        lines.append(f"{label:<{width}}{cells}")
    seeds: dict[str, int] = {}
    for per in rows.values():
        seeds.update(per[columns[0]].n_seeds)
    last = next(iter(rows.values()))[columns[0]]
    kinds = ", ".join(f"{k}: {n}" for k, n in seeds.items())
    lines.append(f"seeds per kind ({kinds}); {last.n_images} images; {last.n_boot} replicates")
    return "\n".join(lines)
