"""Named training runs: what one run is, its key in the results store, and a run queue's time.

A :class:`RunSpec` is everything that makes a run differ from another: the loss, the seed,
the classes, the precision and any overridden profile fields. Its :meth:`RunSpec.key` is
where ``scripts/sweep_losses.py`` records the result, e.g. ``article/seed0`` for the book's
own settings and ``article/seed0/image_size160`` for an arm of an ablation; the default
parts are left out, so the keys of the book's runs never change.

A run queue is written one run per line (``#`` starts a comment)::

    loss=article seed=0 image_size=299
    loss=crossentropy seed=1 classes=airplanes,watch,Leopards,Motorbikes
    loss=forward seed=2 precision=mixed_bfloat16 learning_rate=1e-4
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.data import DEFAULT_CLASSES
from helpers.profiles import Profile, override_profile, override_tag, parse_overrides

RUN_FIELDS = ("loss", "seed", "classes", "precision")


@dataclass(frozen=True)
class RunSpec:
    """One training run of the experiment.

    Attributes
    ----------
    loss
        ``crossentropy`` (true labels) or a complementary loss name.
    seed
        Seeds the weights, the batches and the complementary labels.
    classes
        Class folder names in label order.
    precision
        ``auto``, ``float32`` or ``mixed_bfloat16``; ``None``: ``$BOOK_PRECISION``/auto.
    overrides
        Profile fields this run changes (``helpers.profiles.override_profile``).
    """

    loss: str
    seed: int
    classes: tuple[str, ...] = DEFAULT_CLASSES
    precision: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def profile(self, base: Profile) -> Profile:
        """``base`` with this run's overrides."""
        return override_profile(base, self.overrides)

    def key(self, base: Profile, policy: str) -> str:
        """Results-store key: ``<loss>/seed<seed>`` plus a part per non-default setting."""
        return "/".join([self.loss, f"seed{self.seed}", *self.variant_parts(base, policy)])

    def variant_parts(self, base: Profile, policy: str) -> list[str]:
        """The key's parts after the seed: classes, overrides, precision (defaults omitted)."""
        from helpers.experiment import classes_tag

        parts = [classes_tag(self.classes), override_tag(self.profile(base))]
        parts.append("" if policy == "float32" else policy)
        return [part for part in parts if part]

    def describe(self) -> str:
        """A short line for logs: loss, seed and what differs from the defaults."""
        text = f"{self.loss} seed {self.seed}"
        if self.classes != DEFAULT_CLASSES:
            text += f" classes={','.join(self.classes)}"
        if self.precision:
            text += f" precision={self.precision}"
        return text + "".join(f" {k}={v}" for k, v in self.overrides.items())


def summary_key(key: str, seed: int) -> str:
    """The key that summarises run ``key`` over seeds: its ``seed<seed>`` part becomes ``summary``.

    ``article/seed1/image_size160`` -> ``article/summary/image_size160``. Raises ``ValueError``
    for a key without that part.
    """
    parts = key.split("/")
    if f"seed{seed}" not in parts:
        raise ValueError(f"Results key {key!r} has no part 'seed{seed}'.")
    return "/".join("summary" if part == f"seed{seed}" else part for part in parts)


def parse_run(line: str) -> RunSpec:
    """A :class:`RunSpec` from ``loss=L seed=S [classes=a,b] [precision=P] [FIELD=VALUE ...]``.

    Raises
    ------
    ValueError
        Without ``loss`` or ``seed``, or for a malformed item or seed.
    """
    items = parse_overrides(line.split())
    missing = [name for name in ("loss", "seed") if name not in items]
    if missing:
        raise ValueError(
            f"Run {line.strip()!r} lacks {' and '.join(missing)} (e.g. loss=article seed=0)."
        )
    try:
        seed = int(items.pop("seed"))
    except ValueError:
        raise ValueError(f"Run {line.strip()!r}: the seed must be an integer.") from None
    loss = items.pop("loss")
    classes = tuple(c for c in items.pop("classes", ",".join(DEFAULT_CLASSES)).split(",") if c)
    return RunSpec(loss, seed, classes, items.pop("precision", None), items)


def parse_runs(text: str) -> list[RunSpec]:
    """Every run of a queue file's text (blank lines and ``#`` comments skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [parse_run(line) for line in lines if line]


def grid(
    losses: Sequence[str],
    seeds: Sequence[int],
    classes: Sequence[str] = DEFAULT_CLASSES,
    precision: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[RunSpec]:
    """Every loss with every seed (loss-major), all with the same settings."""
    return [
        RunSpec(loss, seed, tuple(classes), precision, dict(overrides or {}))
        for loss in losses
        for seed in seeds
    ]


def estimate_seconds(done: Sequence[tuple[int, float]], sizes: Sequence[int]) -> float | None:
    """Seconds the runs at image ``sizes`` should take, from finished ``(size, seconds)`` runs.

    Time scales with the pixel count, so a 299-px run is estimated as about 9.7 times a
    96-px one. ``None`` until a run has finished.
    """
    if not done:
        return None
    per_pixel = sum(seconds / size**2 for size, seconds in done) / len(done)
    return per_pixel * sum(size**2 for size in sizes)
