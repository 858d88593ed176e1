"""Run profiles: one name decides the scale of every chapter.

``smoke`` is for CI (minutes on two CPU cores), ``laptop`` gives a real result on a CPU in
under an hour, ``paper`` repeats the original study's 299x299 settings on a GPU.
``BOOK_PROFILE`` picks one; without it the book uses ``paper`` when the Keras backend sees a
GPU and ``laptop`` otherwise.
"""

from __future__ import annotations

import os
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
        max_epochs=2,
        patience=1,
        seeds=(0, 1),
        max_train_images=64,
        cam_images=8,
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
