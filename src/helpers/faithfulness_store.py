"""Deletion and insertion curves on disk, and "beats random" with an interval over models.

The lab chapter asks whether each kind of model's Grad-CAM maps are faithful: do they rank
pixels better than a random order, for deletion *and* insertion? One model says little (the
answer varies from seed to seed), so :func:`kind_verdicts` pools every model of a kind with a
two-level bootstrap, seeds first, then images, as :mod:`helpers.model_bootstrap` does for the
agreement. The curves of many models take an hour on a CPU; :func:`save_faithfulness` keeps
them (every image's curve, a few hundred kB) so that the chapter can read them later, and
:func:`load_faithfulness` gives back the :class:`helpers.faithfulness.LayerFaithfulness`
objects that every function of :mod:`helpers.faithfulness` takes.

The book's settings (:data:`SETTINGS`) avoid what made the first version hard to read: a grey
baseline that the models classify confidently (a blur is used instead, its class probability
reported), and probabilities that differ between confident and unsure models (each curve is
scored relative to the intact image's probability).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from helpers.agreement import Estimate
from helpers.faithfulness import Curve, LayerFaithfulness, verdict_of

# The table's word for each verdict of helpers.faithfulness.verdict_of.
WORDS = {"better": "beats", "worse": "worse", "unclear": "no"}

FORMAT = 1
CURVES = ("deletion", "insertion", "random_deletion", "random_insertion")
# Deletion to a strong blur (sigma = image size / 8) rather than flat grey, insertion from the
# same blur, scores relative to the intact image, three random orders per model.
SETTINGS: dict[str, Any] = {
    "steps": 16,
    "baseline": "blur",
    "start": "blur",
    "blur_fraction": 1 / 8,
    "score": "relative",
    "n_random": 3,
    "images": 48,
}


def faithfulness_path(profile: str, directory: str | Path | None = None) -> Path:
    """``<results>/faithfulness/<profile>.npz``."""
    from helpers.results import results_dir

    base = Path(directory) if directory is not None else results_dir()
    return base / "faithfulness" / f"{profile}.npz"


def measure(
    model: Any, x: npt.ArrayLike, layers: Sequence[str], seed: int = 0, steps: int | None = None
) -> dict[str, LayerFaithfulness]:
    """:func:`helpers.faithfulness.faithfulness_by_layer` with the book's :data:`SETTINGS`.

    ``steps`` overrides ``SETTINGS["steps"]`` (the ``smoke`` profile takes fewer: every step
    is a forward pass over every image, for each map and random order). Only results at the
    book's settings may be stored: :func:`save_faithfulness` records ``SETTINGS``.
    """
    from helpers.faithfulness import faithfulness_by_layer

    images = np.asarray(x, dtype=np.float32)
    s = SETTINGS
    steps = s["steps"] if steps is None else steps
    return faithfulness_by_layer(
        model, images, layers, steps=steps, seed=seed, baseline=s["baseline"],
        start=s["start"], score=s["score"], n_random=s["n_random"],
        blur_sigma=s["blur_fraction"] * images.shape[1],
    )  # fmt: skip


def save_faithfulness(
    path: str | Path,
    results: Mapping[str, Mapping[str, LayerFaithfulness]],
    devices: Mapping[str, str],
    image_indices: npt.ArrayLike,
) -> Path:
    """Write ``{model: {layer: LayerFaithfulness}}`` (every image's four curves, the
    probabilities of the baseline and the start) with each model's device and the images."""
    models = list(results)
    if not models or set(devices) != set(models):
        raise ValueError(f"need results and a device for every model, got {sorted(devices)}")
    layers = list(results[models[0]])
    want = SETTINGS["steps"] + 1
    other = sorted(
        f"{m} at {layer} ({len(r.deletion.fractions)})"
        for m, per in results.items()
        for layer, r in per.items()
        if len(r.deletion.fractions) != want
    )
    if other:  # e.g. the smoke profile's few steps: the store says SETTINGS, so it must hold
        raise ValueError(
            f"the store records the book's settings ({want} points a curve), but these curves "
            f"have another count: {', '.join(other)}; measure them with measure(...) and no steps"
        )
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT),
        "models": np.array(models),
        "layers": np.array(layers),
        "devices": np.array([devices[m] for m in models]),
        "image_indices": np.asarray(image_indices, dtype=np.int64),
        "settings": np.array(json.dumps(SETTINGS)),
    }
    for i, m in enumerate(models):
        if list(results[m]) != layers:
            raise ValueError(f"{m!r} has layers {list(results[m])}, expected {layers}")
        for j, layer in enumerate(layers):
            r = results[m][layer]
            for name in CURVES:
                curve: Curve = getattr(r, name)
                arrays[f"{name}_{i}_{j}"] = curve.scores.astype(np.float32)
            arrays["fractions"] = r.deletion.fractions
            arrays["score"] = np.array(r.deletion.score)
            for name in ("baseline_probability", "start_probability"):
                value = getattr(r, name)
                if value is not None:
                    arrays[f"{name}_{i}_{j}"] = np.asarray(value, dtype=np.float32)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def load_faithfulness(
    path: str | Path,
) -> tuple[dict[str, dict[str, LayerFaithfulness]], dict[str, str], npt.NDArray[np.int64]]:
    """Read :func:`save_faithfulness`'s file: ``(results, devices, image_indices)``."""
    with np.load(path, allow_pickle=False) as f:
        if int(f["format"]) != FORMAT:
            raise ValueError(f"{path}: format {int(f['format'])}, expected {FORMAT}")
        models, layers = [str(m) for m in f["models"]], [str(la) for la in f["layers"]]
        fractions, score = f["fractions"].astype(np.float64), str(f["score"])

        def optional(key: str) -> Any:
            return f[key].astype(np.float64) if key in f else None

        def one(i: int, j: int) -> LayerFaithfulness:
            curves = {
                c: Curve(fractions, f[f"{c}_{i}_{j}"].astype(np.float64), score) for c in CURVES
            }
            return LayerFaithfulness(
                **curves,
                baseline_probability=optional(f"baseline_probability_{i}_{j}"),
                start_probability=optional(f"start_probability_{i}_{j}"),
            )

        results = {
            m: {layer: one(i, j) for j, layer in enumerate(layers)} for i, m in enumerate(models)
        }
        devices = dict(zip(models, (str(d) for d in f["devices"]), strict=True))
        return results, devices, f["image_indices"].astype(np.int64)


def kind_verdicts(
    results: Mapping[str, Mapping[str, LayerFaithfulness]],
    kind: str,
    kind_of: Mapping[str, str] | None = None,
    *,
    curve: Literal["deletion", "insertion"] = "deletion",
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Per layer, map AUC minus random-order AUC over every model of ``kind``, with an interval
    from a two-level bootstrap (the models with replacement, then the images).

    Models are named ``"<kind> s<seed>"`` unless ``kind_of`` maps names to kinds. For deletion
    an interval entirely below 0 means the maps beat a random order; for insertion, entirely
    above 0. ``Estimate.n`` is the number of images and ``Estimate.n_dropped`` the replicates
    left out (no finite difference among the drawn images).
    """
    from helpers.model_bootstrap import parse_model_name

    names = [m for m in results if (kind_of[m] if kind_of else parse_model_name(m)[0]) == kind]
    if not names:
        raise ValueError(f"no model of kind {kind!r} among {sorted(results)}")
    rng = np.random.default_rng(seed)
    out = {}
    for layer in results[names[0]]:
        diffs = np.array([
            getattr(results[m][layer], curve).auc - getattr(results[m][layer], f"random_{curve}").auc
            for m in names
        ])  # fmt: skip
        n_models, n_images = diffs.shape
        pick_m = rng.integers(0, n_models, (n_boot, n_models))
        pick_i = rng.integers(0, n_images, (n_boot, n_images))
        reps = np.array(
            [np.nanmean(diffs[pm][:, pi]) for pm, pi in zip(pick_m, pick_i, strict=True)]
        )
        finite = reps[np.isfinite(reps)]
        alpha = (1 - ci) / 2
        low, high = np.quantile(finite, [alpha, 1 - alpha]) if len(finite) else (np.nan, np.nan)
        out[layer] = Estimate(
            float(np.nanmean(diffs)), float(low), float(high), n_images,
            n_boot - len(finite), ci, f"{n_models} models+images",
        )  # fmt: skip
    return out


def pool_by_kind(
    results: Mapping[str, Mapping[str, LayerFaithfulness]],
) -> dict[str, dict[str, LayerFaithfulness]]:
    """``{kind: {layer: LayerFaithfulness}}``: the images of every model of a kind stacked, so
    that a plot or :func:`helpers.faithfulness.faithfulness_table` shows one line per kind."""
    from helpers.model_bootstrap import parse_model_name

    kinds: dict[str, list[str]] = {}
    for name in results:
        kinds.setdefault(parse_model_name(name)[0], []).append(name)

    def stack(parts: list[LayerFaithfulness], curve: str) -> Curve:
        first: Curve = getattr(parts[0], curve)
        scores = np.concatenate([getattr(p, curve).scores for p in parts])
        return Curve(first.fractions, scores, first.score)

    def probabilities(parts: list[LayerFaithfulness], key: str) -> Any:
        values = [getattr(p, key) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    out: dict[str, dict[str, LayerFaithfulness]] = {}
    for kind, names in kinds.items():
        out[kind] = {}
        for layer in results[names[0]]:
            parts = [results[n][layer] for n in names]
            out[kind][layer] = LayerFaithfulness(
                **{c: stack(parts, c) for c in CURVES},
                baseline_probability=probabilities(parts, "baseline_probability"),
                start_probability=probabilities(parts, "start_probability"),
            )
    return out


def verdict_table(
    results: Mapping[str, Mapping[str, LayerFaithfulness]], n_boot: int = 2000, seed: int = 0
) -> tuple[str, dict[tuple[str, str, str], Estimate]]:
    """Per kind and layer, deletion and insertion "map minus random" with :func:`kind_verdicts`'
    interval over models and images, the verdict, and the blurred image's class probability.

    Returns the text table and ``{(kind, layer, "deletion" | "insertion"): Estimate}``.
    """
    from helpers.agreement import format_interval
    from helpers.model_bootstrap import parse_model_name

    pooled = pool_by_kind(results)
    found: dict[tuple[str, str, str], Estimate] = {}
    lines = [
        f"{'kind':<9}{'models':>7}  {'layer':<21}{'deletion: map - random':>26}"
        f"{'insertion: map - random':>27}  {'verdict':<22}{'blurred p':>9}"
    ]
    for kind, layers in pooled.items():
        n_models = sum(1 for m in results if parse_model_name(m)[0] == kind)
        dele = kind_verdicts(results, kind, n_boot=n_boot, seed=seed)
        ins = kind_verdicts(results, kind, curve="insertion", n_boot=n_boot, seed=seed)
        for layer, r in layers.items():
            d, i = dele[layer], ins[layer]
            found[(kind, layer, "deletion")], found[(kind, layer, "insertion")] = d, i
            verdict = f"del. {WORDS[verdict_of(d)]}, ins. {WORDS[verdict_of(i, 'insertion')]}"
            base = r.baseline_probability
            lines.append(
                f"{kind:<9}{n_models:>7}  {layer:<21}{format_interval(d, digits=3):>26}"
                f"{format_interval(i, digits=3):>27}  {verdict:<22}"
                f"{'-' if base is None else f'{np.mean(base):.2f}':>9}"
            )
    return "\n".join(lines), found
