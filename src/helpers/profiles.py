"""Run profiles: one name decides the scale of every chapter.

``smoke`` is for CI (minutes on two CPU cores), ``laptop`` gives a real result on a CPU in
under an hour, ``paper`` repeats the original study's 299x299 settings on a GPU.
``BOOK_PROFILE`` picks one; without it the book uses ``paper`` when the Keras backend sees a
GPU and ``laptop`` otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ENV_VAR = "BOOK_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Every knob that changes with the scale of a run.

    Attributes
    ----------
    name
        ``smoke``, ``laptop`` or ``paper``.
    image_size
        Side of the square input, in pixels.
    batch_size
        Training batch size.
    learning_rate
        Adam learning rate (``amsgrad`` as in the original study).
    max_epochs
        Upper bound on epochs; early stopping usually ends sooner.
    patience
        Early-stopping patience, in epochs, on the validation loss.
    seeds
        Seeds used where a chapter repeats a run (the first one is the headline run).
    max_train_images
        Cap on the training images actually fed to the model (``None``: all of them).
        Only ``smoke`` caps, so that CI stays fast; the data set itself is never cut.
    cam_images
        How many test images the Grad-CAM chapters analyse (``None``: all).
    amsgrad
        Whether Adam uses the AMSGrad variant (the original study did).
    checkpoint
        Save the training state after every epoch, so that an interrupted run resumes
        (``helpers.checkpoint``). Off for ``smoke``, whose runs take seconds.
    stop_on
        What early stopping watches: ``"validation"`` (the book's held-out split) or
        ``"test"`` (the test set, as the original study did; only to measure how much that
        choice flatters the reported number, see the gap chapter).
    monitor_images
        Validation images the batch-norm trap's monitor scores with batch statistics after
        every epoch (``helpers.batchnorm.BatchStatsMonitor``). The monitor runs eagerly, so
        ``smoke`` scores fewer; no weight depends on it.
    extra_outputs
        Logits beyond the classes. The original's ``Xception()`` call built 4 outputs for
        3 classes; a class no image has, and that is never a complementary label, gives a
        complementary loss somewhere to put probability. 0 for the book's models. With
        extra outputs, training records per epoch the share of monitored images (the test
        set's, through ``helpers.experiment.train_run``) on which an extra output wins the
        argmax (``extra_output_share`` in the history, ``helpers.training.ExtraOutputShare``).
    recalibrate_bn
        Re-estimate the BatchNorm statistics before every validation pass (the book's fix,
        ``helpers.batchnorm``). ``False`` trains with Keras' own moving averages, as the
        original did: the momentum stays Keras' default 0.99 (``train_model``'s
        ``bn_momentum``), the momentum of the Keras 2 ``BatchNormalization`` layers of the
        original's ``keras.applications.Xception``, so no momentum field is needed.
    lr_decay
        Keras 2's ``decay`` argument of the optimizer: the learning rate of step ``t``
        (counted from 0 over the whole run) is ``learning_rate / (1 + lr_decay * t)``. Keras 3
        dropped the argument; the same formula is ``InverseTimeDecay(learning_rate,
        decay_steps=1, decay_rate=lr_decay)``, used only when ``lr_decay > 0`` (0, the
        default, keeps a constant rate). The original passed ``decay=1e-6`` with its 1e-5
        (issue 15, chapter 7's table): after 5,200 steps (200 laptop epochs) the rate is
        0.5% lower, so at this scale the decay is nearly a constant rate.
    middle_blocks
        Xception's middle-flow blocks (``helpers.xception.build_xception``): 8, as in
        Xception, for every profile of the book. Only the tests of the training machinery
        (checkpoints, locks, the time budget) lower it, to train a shallower network of the
        same design faster.
    """

    name: str
    image_size: int
    batch_size: int
    learning_rate: float
    max_epochs: int
    patience: int
    seeds: tuple[int, ...]
    max_train_images: int | None = None
    cam_images: int | None = None
    amsgrad: bool = True
    checkpoint: bool = True
    stop_on: str = "validation"
    extra_outputs: int = 0
    monitor_images: int = 256
    recalibrate_bn: bool = True
    lr_decay: float = 0.0
    middle_blocks: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-friendly values."""
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        image_size=71,
        batch_size=16,
        learning_rate=1e-3,
        # One epoch: a second cost 15 s of a 45 s smoke run (measured), and CI trains a dozen.
        max_epochs=1,
        patience=1,
        seeds=(0, 1),
        # Two steps an epoch: each training step cost 2.2 s of a 30 s smoke run, and CI trains
        # many; nbval took 479 s in CI with 32 images, 573 s with 64 (measured).
        max_train_images=32,
        cam_images=8,
        checkpoint=False,
        monitor_images=16,
    ),
    "laptop": Profile(
        name="laptop",
        image_size=96,
        batch_size=16,
        learning_rate=3e-4,
        max_epochs=25,
        patience=5,
        seeds=(0, 1, 2),
        cam_images=None,
    ),
    "paper": Profile(
        name="paper",
        image_size=299,
        batch_size=16,
        learning_rate=1e-5,
        max_epochs=1000,
        patience=3,
        seeds=(0, 1, 2),
        cam_images=None,
    ),
}


def gpu_available() -> bool:
    """Whether the active Keras backend can see a GPU."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # no backend installed or no driver: certainly no GPU
        return False


def default_profile_name() -> str:
    """``paper`` when a GPU is visible, else ``laptop``."""
    return "paper" if gpu_available() else "laptop"


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``, else ``$BOOK_PROFILE``, else the default.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    chosen = name or os.environ.get(ENV_VAR) or default_profile_name()
    key = chosen.strip().lower()
    if key not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ValueError(
            f"Unknown run profile {chosen!r}. Valid profiles: {valid}. "
            f"Set {ENV_VAR} to one of them (or unset it for the default)."
        )
    return PROFILES[key]


# ------------------------------------------------------------------------------ overrides

NOT_OVERRIDABLE = ("name", "extra")
STOP_ON = ("validation", "test")


def overridable_fields() -> list[str]:
    """The profile fields a run may override (every field but ``name`` and ``extra``)."""
    return [f.name for f in dataclasses.fields(Profile) if f.name not in NOT_OVERRIDABLE]


def _coerce(name: str, value: Any, current: Any) -> Any:
    """``value`` (a string from a command line, or already typed) as field ``name`` wants it."""
    if not isinstance(value, str):
        return tuple(value) if name == "seeds" else value
    text = value.strip()
    if name == "stop_on":
        if text not in STOP_ON:
            raise ValueError(f"stop_on must be one of {', '.join(STOP_ON)}, not {value!r}.")
        return text
    if text.lower() == "none" and name in ("max_train_images", "cam_images"):
        return None
    try:
        if name == "seeds":
            return tuple(int(part) for part in text.split(",") if part)
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(current, float):  # learning_rate, lr_decay
            return float(text)
        return int(text)
    except ValueError:
        raise ValueError(f"Profile field {name!r} cannot take the value {value!r}.") from None


def override_profile(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    """``profile`` with some fields replaced: the book's one way to vary a run's settings.

    The result keeps the profile's name and records what was changed in
    ``extra["overrides"]``, so run names (:func:`override_tag`) and the results store can
    tell an overridden run from the profile's own. Values may be strings (as on a command
    line: ``"1e-4"``, ``"none"``, ``"0,1,2"``, ``"false"``).

    Raises
    ------
    ValueError
        For a field that does not exist or cannot be overridden, or a value of the wrong
        kind; the message lists the fields.
    """
    allowed = overridable_fields()
    unknown = [name for name in overrides if name not in allowed]
    if unknown:
        raise ValueError(
            f"Cannot override profile field(s) {', '.join(map(repr, unknown))}. "
            f"Overridable fields: {', '.join(allowed)}."
        )
    values = {k: _coerce(k, v, getattr(profile, k)) for k, v in overrides.items()}
    if not values:
        return profile
    recorded = {**profile.extra.get("overrides", {}), **values}
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in recorded.items()}
    return dataclasses.replace(profile, **values, extra={**profile.extra, "overrides": recorded})


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["learning_rate=1e-4", "patience=15"]`` as a dict (values still strings).

    Raises
    ------
    ValueError
        For an item without ``=``.
    """
    parsed = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"Override {item!r} must look like FIELD=VALUE, e.g. patience=15.")
        parsed[name.strip()] = value.strip()
    return parsed


def override_tag(profile: Profile, fields: Sequence[str] | None = None) -> str:
    """A file-name-safe tag of ``profile``'s overrides that differ from its named profile.

    ``""`` when nothing differs; e.g. ``"image_size160-learning_rate0.0001"``. Only
    ``fields`` count when given (e.g. the fields that change training).
    """
    base = PROFILES.get(profile.name)
    parts = []
    for name, value in sorted(profile.extra.get("overrides", {}).items()):
        if fields is not None and name not in fields:
            continue
        if base is not None and getattr(base, name) == _coerce(name, value, getattr(base, name)):
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        parts.append(f"{name}{shown}")
    return "-".join(parts)
