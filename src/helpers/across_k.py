"""Does a loss move the maps at three classes *and* at four? Chapter 5's verdict, per K.

Chapter 5 asks, at the book's three classes, whether a complementary model's Grad-CAM maps
differ from a regular model's more than two regular models' maps differ from each other.
Chapter 8 asks the same for several losses at K = 3 and K = 4, from stored maps
(:mod:`helpers.map_store`), with the same two-level bootstrap over seeds and images
(:func:`helpers.model_bootstrap.compare_to_control`). A loss is only compared where both it
and the regular training have at least ``min_seeds`` models: with two seeds, half the
bootstrap's replicates have no pair of distinct regular models.

Each (loss, K) gets a **reading** from the number of the 13 residual stages whose interval
lies entirely below 0 (the loss's maps agree less with a regular model's than a second
regular model's do) or above it:

- ``"moves"``: below at more than half the stages;
- ``"stays"``: off zero at no more than ``round(0.15 * stages)`` of them (2 of 13), about
  what chance gives over 13 intervals that are not independent;
- ``"agrees more"``: above at more than half;
- ``"mixed"``: anything else.

The thresholds are fixed here, before reading any result, and a chapter states them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy.typing as npt
from matplotlib.figure import Figure

from helpers.diagnostics import depth_bands
from helpers.model_bootstrap import (
    SeedImageEstimate,
    by_band,
    compare_to_control,
    layers_off_zero,
    parse_model_name,
    seeds_of,
)
from helpers.plots import panels_of_differences

MapsByModel = Mapping[str, Mapping[str, npt.ArrayLike]]
K_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


@dataclass(frozen=True)
class LossAtK:
    """One loss against the regular control at one number of classes."""

    loss: str
    k: int
    n_seeds: Mapping[str, int]
    bands: Mapping[str, SeedImageEstimate]
    below: Sequence[str]
    above: Sequence[str]
    n_layers: int
    # Per stage, for a figure: {layer: SeedImageEstimate}.
    per_layer: Mapping[str, SeedImageEstimate] = field(default_factory=dict)

    @property
    def reading(self) -> str:
        """``"moves"``, ``"stays"``, ``"agrees more"`` or ``"mixed"`` (module docstring)."""
        half = self.n_layers / 2
        if len(self.below) > half:
            return "moves"
        if len(self.above) > half:
            return "agrees more"
        if len(self.below) + len(self.above) <= round(0.15 * self.n_layers):
            return "stays"
        return "mixed"


def compare_across_k(
    maps_by_k: Mapping[int, MapsByModel],
    losses: Sequence[str],
    *,
    layers: Sequence[str] | None = None,
    min_seeds: int = 3,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[tuple[str, int], LossAtK | None]:
    """``{(loss, K): LossAtK}`` for every loss and K; ``None`` where either kind has too few seeds.

    ``maps_by_k`` maps K to ``{"<kind> s<seed>": {layer: maps}}`` (regular models are
    ``"regular sN"``). ``layers`` default to the first model's; the bands are
    :func:`helpers.diagnostics.depth_bands` of them.
    """
    out: dict[tuple[str, int], LossAtK | None] = {}
    for k, maps in maps_by_k.items():
        for loss in losses:
            n_seeds = {kind: len(seeds_of(maps, kind)) for kind in ("regular", loss)}
            if min(n_seeds.values()) < min_seeds:
                out[(loss, k)] = None
                continue
            stages = list(layers) if layers is not None else list(next(iter(maps.values())))
            per_layer = compare_to_control(maps, loss, layers=stages, n_boot=n_boot, seed=seed)
            off = layers_off_zero(per_layer)
            out[(loss, k)] = LossAtK(
                loss=loss,
                k=k,
                n_seeds=n_seeds,
                bands=by_band(per_layer, depth_bands(stages)),
                below=off["below"],
                above=off["above"],
                n_layers=len(stages),
                per_layer=per_layer,
            )
    return out


def across_k_figure(
    results: Mapping[tuple[str, int], LossAtK | None], losses: Sequence[str]
) -> Figure:
    """Per stage, each loss's difference to the regular control with its interval over seeds
    and images: one panel per K (:func:`helpers.plots.panels_of_differences`); a K where no loss
    is stored yet keeps its panel and says so."""
    ks = sorted({k for _, k in results})
    measured = [r for r in results.values() if r is not None]
    if not measured:
        raise ValueError("no loss has the seeds to be compared at any K; nothing to draw")
    layers = list(measured[0].per_layer)
    panels = {
        f"{K_WORDS.get(k, str(k)).capitalize()} classes (K = {k})": {
            loss: r.per_layer for loss in losses if (r := results.get((loss, k))) is not None
        }
        for k in ks
    }
    return panels_of_differences(layers, panels)


def format_across_k(results: Mapping[tuple[str, int], LossAtK | None], key: str = "K") -> str:
    """Text table: per loss and K, the difference to the control per band, stages off zero,
    the reading and the seeds it rests on; a row says so where a loss is not stored yet.

    ``key`` heads the second column: ``"px"`` where the results are keyed by input size."""
    w = max(2, len(key), *(len(str(k)) for _, k in results))
    lines = [
        f"{'loss':<9}{key:>{w}}  {'shallow':>21}{'middle':>21}{'deep':>21}"
        f"  {'below/above':>11}  {'reading':<12}seeds"
    ]
    for (loss, k), r in sorted(results.items()):
        if r is None:
            lines.append(f"{loss:<9}{k:>{w}}  {'not stored yet (fewer than the seeds needed)':>63}")
            continue
        cells = "".join(f"{e.mean:+.2f} [{e.low:+.2f}, {e.high:+.2f}]".rjust(21)
                        for e in r.bands.values())  # fmt: skip
        counts = f"{len(r.below)}/{len(r.above)} of {r.n_layers}"
        seeds = ", ".join(f"{n} {kind}" for kind, n in r.n_seeds.items())
        lines.append(f"{loss:<9}{k:>{w}}  {cells}  {counts:>11}  {r.reading:<12}{seeds}")
    return "\n".join(lines)


PHRASES = {
    "moves": "moves the maps away from a regular model's",
    "stays": "leaves them where a second regular model puts them",
    "agrees more": "keeps them closer to a regular model's than a second regular model does",
    "mixed": "moves them at some stages only",
}

_SHORT = {
    "moves": "moves the maps",
    "stays": "leaves them in place",
    "agrees more": "keeps them closer",
    "mixed": "moves them at some stages",
}


def _k_list(ks: Sequence[int]) -> str:
    words = [K_WORDS.get(k, str(k)) for k in ks]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def across_k_sentence(
    results: Mapping[tuple[str, int], LossAtK | None], losses: Sequence[str]
) -> str:
    """One clause per loss, joined by semicolons: what it does at the numbers of classes where
    it was measured, and, where the reading changes with K, at each. Built from the readings
    only, so the chapter's words follow the stored maps."""
    clauses = []
    for loss in losses:
        measured = {k: r for (name, k), r in sorted(results.items()) if name == loss and r}
        missing = [k for (name, k), r in sorted(results.items()) if name == loss and r is None]
        if not measured:
            clauses.append(f"{loss} is not measured yet at any number of classes")
            continue
        readings = {r.reading for r in measured.values()}
        stages = next(iter(measured.values())).n_layers
        notes = []
        if len(readings) == 1:
            both = "both" if len(measured) == 2 else "each of"
            where = (
                _k_list(list(measured))
                if len(measured) == 1
                else f"{both} {_k_list(list(measured))}"
            )
            counts = " and ".join(f"{len(r.below)}" for r in measured.values())
            clause = f"{loss} {PHRASES[readings.pop()]} at {where} classes"
            notes.append(f"below the control at {counts} of {stages} stages")
        else:
            clause = f"{loss} " + ", but ".join(
                f"{PHRASES[r.reading]} at {_k_list([k])} classes ({len(r.below)} of {stages})"
                for k, r in measured.items()
            )
        if missing:
            notes.append(f"not yet measured at {_k_list(missing)}")
        if notes:
            clause += f" ({'; '.join(notes)})"
        clauses.append(clause)
    return "; ".join(clauses) + "."


def readings_that_change(
    results: Mapping[tuple[str, int], LossAtK | None], losses: Sequence[str]
) -> str:
    """The losses whose reading differs between two numbers of classes, as one clause.

    Only losses measured at two or more K count. E.g. ``"scl_exp leaves them in place at three
    classes but moves the maps at four"`` (short words for the intro), clauses joined by
    ``"; "``; ``""`` when every loss measured at several K reads the same at each, so that a
    sentence built on it can say so instead of a typed claim.
    """
    clauses = []
    for loss in losses:
        measured = {k: r for (name, k), r in sorted(results.items()) if name == loss and r}
        if len(measured) < 2 or len({r.reading for r in measured.values()}) == 1:
            continue
        clauses.append(
            f"{loss} "
            + " but ".join(
                f"{_SHORT[r.reading]} at {_k_list([k])}" + (" classes" if i == 0 else "")
                for i, (k, r) in enumerate(measured.items())
            )
        )
    return "; ".join(clauses)


def mean_accuracy_by_kind(accuracies: Mapping[str, float]) -> dict[str, float]:
    """``{kind: mean true test accuracy}`` of stored models named ``"<kind> s<seed>"``.

    A reading that changes with K may follow a weaker model rather than the number of classes,
    so a chapter prints how well the very models whose maps it compares classify.
    """
    by_kind: dict[str, list[float]] = {}
    for name, accuracy in accuracies.items():
        by_kind.setdefault(parse_model_name(name)[0], []).append(float(accuracy))
    return {kind: sum(values) / len(values) for kind, values in sorted(by_kind.items())}
