"""The original figure at the original's resolution: the same runs at two input sizes.

The laptop profile trains on 96-px images; the original study used 299 px. Xception shrinks
its input 32 times before the deep layer, so the deep Grad-CAM map has 3x3 cells at 96 px
and 10x10 at 299 px. This module picks the two sizes for a profile, gathers the models of
both (loading the expensive ones, never starting them by accident), and builds the design
of model pairs that exist at both sizes, so the two sizes are compared on the same pairs. For
the verdict over models it reads the maps stored at each size (:func:`stored_maps_by_size`)
and says what a loss does at each (:func:`size_sentence`); the same stored maps give the
image-by-image comparison on the same pairs at both sizes (:func:`same_pairs_by_size`),
without any model's weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.across_k import PHRASES, LossAtK
from helpers.comparisons import PerImage, agreement_over_pairs, comparison_design
from helpers.experiment import Experiment, is_trained, prepare_experiment, train_run
from helpers.map_store import StoredMaps, load_maps, maps_tag, stored_maps_path
from helpers.model_bootstrap import seeds_of
from helpers.profiles import Profile, override_profile

ORIGINAL_SIZE = 299
# (the book's size, the bigger one) per profile. Smoke stands in with its own small sizes:
# 87 px is the smallest size above 71 whose middle map has more cells (6x6 against 5x5).
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "smoke": (71, 87),
    "laptop": (96, ORIGINAL_SIZE),
    "paper": (96, ORIGINAL_SIZE),
}


def resolution_profiles(profile: Profile) -> dict[int, Profile]:
    """``{size: profile}`` for the two sizes compared at ``profile``, smaller first.

    Each is ``profile`` with ``image_size`` overridden (``helpers.profiles.override_profile``),
    so its runs are the very runs the ablation queue records (e.g. ``image_size=299``).

    Raises
    ------
    ValueError
        For a profile without sizes in :data:`RESOLUTIONS`.
    """
    if profile.name not in RESOLUTIONS:
        raise ValueError(
            f"No input sizes are set for profile {profile.name!r}; "
            f"add them to helpers.resolution.RESOLUTIONS (known: {', '.join(RESOLUTIONS)})."
        )
    return {s: override_profile(profile, {"image_size": s}) for s in RESOLUTIONS[profile.name]}


@dataclass
class SizedRuns:
    """The experiment and the available models at one input size."""

    size: int
    profile: Profile
    experiment: Experiment
    models: dict[str, Any]  # "<kind> s<seed>" -> Keras model
    missing: list[str]  # the wanted models that are not trained yet


def gather_sized_runs(
    profile: Profile,
    losses: Mapping[str, str],
    wanted: Sequence[str],
    *,
    train_missing: bool,
    precision: str | None = None,
) -> dict[int, SizedRuns]:
    """For each size of :func:`resolution_profiles`, the ``wanted`` models.

    ``wanted`` names models ``"<kind> s<seed>"``; ``losses`` maps a kind to its loss
    (``{"regular": "crossentropy", "article": "article"}``). With ``train_missing=False`` a
    run that is not on disk is listed in ``missing`` instead of trained: at 299 px a run
    takes about an hour on a CPU, and the ablation queue is the place to start it.

    Raises
    ------
    ValueError
        For a name that is not ``"<kind> s<seed>"`` with a kind of ``losses``.
    """
    parsed: list[tuple[str, str, int]] = []
    for name in wanted:
        kind, _, digits = name.rpartition(" s")
        if kind not in losses or not digits.isdigit():
            raise ValueError(
                f"Model name {name!r} must read '<kind> s<seed>' with a kind of "
                f"{', '.join(losses)}, e.g. 'regular s0'."
            )
        parsed.append((name, losses[kind], int(digits)))
    runs = {}
    for size, sized in resolution_profiles(profile).items():
        exp = prepare_experiment(sized)
        models, missing = {}, []
        for name, loss, seed in parsed:
            if train_missing or is_trained(exp, loss, seed, sized, precision):
                models[name] = train_run(exp, loss, seed, sized, precision=precision).model
            else:
                missing.append(name)
        runs[size] = SizedRuns(size, sized, exp, models, missing)
    return runs


def shared_design(
    design: Mapping[str, Sequence[tuple[str, str]]], available: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """``design`` (``helpers.comparisons.comparison_design``) cut to pairs of ``available``.

    Comparisons left without a pair are dropped; pass the models present at *every* size,
    so that both sizes average the same pairs.
    """
    have = set(available)
    kept = {
        label: [(a, b) for a, b in pairs if a in have and b in have]
        for label, pairs in design.items()
    }
    return {label: pairs for label, pairs in kept.items() if pairs}


def map_cells(maps: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """``{layer: (rows, columns)}`` of unsampled Grad-CAM maps ``{layer: (N, h, w)}``."""
    return {layer: (int(m.shape[1]), int(m.shape[2])) for layer, m in maps.items()}


def stored_maps_by_size(
    profile: Profile, directory: str | Path | None = None, classes: Sequence[str] | None = None
) -> dict[int, StoredMaps | None]:
    """``{size: stored maps}`` at both sizes of ``profile``; ``None`` where none are stored.

    The maps are those of ``scripts/save_agreement_maps.py``: the folder ``<profile>/`` at the
    profile's own size, ``<profile>-image_size299/`` (the size's override tag) at the other.
    Reading only, never training: a 299-px run takes about an hour on a CPU.
    """
    found: dict[int, StoredMaps | None] = {}
    for size, sized in resolution_profiles(profile).items():
        path = stored_maps_path(profile.name, directory, classes, overrides=maps_tag(sized))
        found[size] = load_maps(path) if path.exists() else None
    return found


def size_sentence(
    results: Mapping[tuple[str, int], LossAtK | None],
    loss: str,
    seeds_by_size: Mapping[int, Mapping[str, int]],
    *,
    min_seeds: int = 3,
) -> str:
    """What ``loss`` does to the maps at each input size, as one sentence for the prose.

    ``results`` is :func:`helpers.across_k.compare_across_k` keyed by size instead of K, and
    ``seeds_by_size`` the number of stored seeds per kind at each size, so that a size not
    measured yet says how many models it has and needs, instead of a typed claim.
    """
    clauses = []
    for size in sorted(seeds_by_size):
        r = results.get((loss, size))
        if r is None:
            regular, other = seeds_by_size[size].get("regular", 0), seeds_by_size[size].get(loss, 0)
            clauses.append(
                f"at {size} px it is not measured yet ({regular} regular and {other} {loss} "
                f"model{'' if other == 1 else 's'} stored; {min_seeds} of each are needed)"
            )
        else:
            seeds = " + ".join(str(r.n_seeds[kind]) for kind in ("regular", loss))
            clauses.append(
                f"at {size} px it {PHRASES[r.reading]} (below the control at {len(r.below)} of "
                f"{r.n_layers} stages; {seeds} seeds)"
            )
    return f"The {loss} loss, by input size: " + "; ".join(clauses) + "."


@dataclass
class SamePairs:
    """:func:`same_pairs_by_size`'s answer: one design, its per-image agreement at each size."""

    seeds: tuple[int, ...]  # the seeds stored for both kinds at every size
    design: dict[str, list[tuple[str, str]]]  # helpers.comparisons.comparison_design
    per_image: dict[tuple[int, str], PerImage]  # (size, comparison) -> agreement per image
    no_predictions: list[int]  # sizes whose maps were stored without predictions


def same_pairs_by_size(stored: Mapping[int, StoredMaps | None], kind: str = "article") -> SamePairs:
    """Chapter 5's comparisons on the *same model pairs* at every size, from stored maps.

    The pairs are those of :func:`helpers.comparisons.comparison_design` over the seeds
    stored for both regular and ``kind`` at every size, so a difference between the sizes is
    the size's, not the seeds'. The row ``"regular vs <kind>, both right"`` keeps, per image,
    the pairs whose models both classify it right; a size stored without predictions has no
    such row and is listed in ``no_predictions``. With fewer than two shared seeds (or a size
    with nothing stored) the design is empty: nothing is compared yet.

    Raises
    ------
    ValueError
        For stores of different test images at different sizes: their pairs cannot be read
        side by side.
    """
    present = {size: s for size, s in stored.items() if s is not None}
    if len(present) < len(stored) or not present:
        return SamePairs((), {}, {}, [])
    first, *others = present.values()
    for other in others:
        if not np.array_equal(first.image_indices, other.image_indices):
            raise ValueError(
                "The stored maps of the two sizes explain different test images; store both "
                "with scripts/save_agreement_maps.py at the same profile (same cam_images)."
            )
    shared = set.intersection(
        *(set(seeds_of(s.maps, k)) for s in present.values() for k in ("regular", kind))
    )
    seeds = tuple(sorted(shared))
    if len(seeds) < 2:
        return SamePairs(seeds, {}, {}, [])
    design = comparison_design(seeds, kind)
    cross = design[f"regular vs {kind}"]
    names = {name for pair in cross for name in pair}
    per_image: dict[tuple[int, str], PerImage] = {}
    no_predictions = []
    for size, s in present.items():
        for label, pairs in design.items():
            per_image[size, label] = agreement_over_pairs(s.maps, pairs)
        if s.labels is None or not names <= set(s.predictions):
            no_predictions.append(size)
            continue
        right = {name: s.predictions[name] == s.labels for name in names}
        per_image[size, f"regular vs {kind}, both right"] = agreement_over_pairs(
            s.maps, cross, keep=right
        )
    return SamePairs(seeds, design, per_image, no_predictions)
