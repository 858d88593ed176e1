"""Chapter 8's comparison again, on only the images every compared model classifies right.

A complementary model that is wrong more often has less reason to look where a regular model
looks, and the maps explain the true class of every image, right or wrong. So when a loss moves
the maps only at four classes, where its models are weaker, the errors may be what moves them.
Keeping only the images that every regular model and every model of the loss classify right
takes the errors out (at the cost of images, and mostly of the hard ones), and the comparison
then runs as before (:func:`helpers.across_k.compare_across_k`).

It needs each model's predicted classes, stored with its maps (:mod:`helpers.map_store`), so
a loss is compared only where every model of both kinds has them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from helpers.across_k import K_WORDS, PHRASES, LossAtK, compare_across_k, format_across_k
from helpers.model_bootstrap import parse_model_name


@dataclass(frozen=True)
class WhereRight:
    """One loss against the regular control, on the images all their models get right."""

    loss: str
    n_images: int  # images every model of both kinds classifies right (0 if not known)
    of_images: int
    result: LossAtK | None  # None: predictions missing, too few images or too few seeds
    missing: tuple[str, ...] = ()  # models stored without predictions
    too_few_seeds: bool = False


def right_everywhere(
    labels: npt.ArrayLike, predictions: Mapping[str, npt.ArrayLike], models: Sequence[str]
) -> npt.NDArray[np.bool_]:
    """Mask of the images every one of ``models`` classifies right (``KeyError`` if one has no
    stored predictions)."""
    truth = np.asarray(labels)
    mask = np.ones(truth.shape, dtype=bool)
    for model in models:
        mask &= np.asarray(predictions[model]) == truth
    return mask


def compare_where_right(
    maps: Mapping[str, Mapping[str, npt.ArrayLike]],
    labels: npt.ArrayLike,
    predictions: Mapping[str, npt.ArrayLike],
    losses: Sequence[str],
    k: int,
    *,
    min_images: int = 20,
    min_seeds: int = 3,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, WhereRight]:
    """Per loss, :func:`~helpers.across_k.compare_across_k` on the images that every regular
    model and every model of the loss classify right; ``result`` is ``None`` where a model has
    no stored predictions, fewer than ``min_images`` images remain, or either kind has fewer
    than ``min_seeds`` models."""
    found, n_all = {}, len(np.asarray(labels))
    for loss in losses:
        models = [m for m in maps if parse_model_name(m)[0] in ("regular", loss)]
        missing = tuple(m for m in models if m not in predictions)
        if missing:
            found[loss] = WhereRight(loss, 0, n_all, None, missing)
            continue
        keep = right_everywhere(labels, predictions, models)
        result, too_few_seeds = None, False
        if keep.sum() >= min_images:
            kept = {m: {layer: np.asarray(a)[keep] for layer, a in maps[m].items()} for m in models}
            result = compare_across_k(
                {k: kept}, [loss], min_seeds=min_seeds, n_boot=n_boot, seed=seed
            )[(loss, k)]
            too_few_seeds = result is None
        found[loss] = WhereRight(loss, int(keep.sum()), n_all, result, (), too_few_seeds)
    return found


def format_where_right(found: Mapping[str, WhereRight], k: int) -> str:
    """The images each loss keeps, then :func:`~helpers.across_k.format_across_k`'s table of
    the losses compared."""
    lines = []
    for loss, w in found.items():
        kept = f"{w.n_images} of {w.of_images} images right for every model"
        lines.append(f"{loss:<9}" + (f"no predictions stored for {', '.join(w.missing)}"
                                     if w.missing else kept))  # fmt: skip
    measured = {(loss, k): w.result for loss, w in found.items() if w.result is not None}
    return "\n".join(lines) + ("\n\n" + format_across_k(measured) if measured else "")


def where_right_sentence(found: Mapping[str, WhereRight], k: int) -> str:
    """One clause per loss, e.g. ``"scl_exp leaves them where a second regular model puts them
    (88 of 168 images; below the control at 1 of 13 stages)"``, joined by semicolons."""
    clauses = []
    for loss, w in found.items():
        if w.missing:
            clauses.append(f"{loss} cannot be compared: {', '.join(w.missing)} "
                           "were stored without their predictions")  # fmt: skip
        elif w.too_few_seeds:
            clauses.append(
                f"{loss} cannot be compared: too few models of it or of the regular kind"
            )
        elif w.result is None:
            clauses.append(f"{loss} cannot be compared: only {w.n_images} of {w.of_images} "
                           "images are classified right by every model")  # fmt: skip
        else:
            r = w.result
            clauses.append(f"{loss} {PHRASES[r.reading]} ({w.n_images} of {w.of_images} images; "
                           f"below the control at {len(r.below)} of {r.n_layers} stages)")  # fmt: skip
    where = f"At {K_WORDS.get(k, str(k))} classes, on the images every model compared gets right, "
    return where + "; ".join(clauses) + "."
