"""The training input pipeline: seeded augmentation, preprocessing, parallel batches.

The original study augmented with ``ImageDataGenerator(rotation_range=90,
width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True, vertical_flip=True)``
and its default ``fill_mode="nearest"``. Per image it draws

- an angle uniform in [-90, 90] degrees (``RandomRotation(0.25)`` in Keras 3 terms),
- shifts uniform in +-10 % of the height and of the width (``RandomTranslation(0.1, 0.1)``),
- a horizontal and a vertical flip, each with probability 1/2
  (``RandomFlip("horizontal_and_vertical")``),

and, like ``ImageDataGenerator``, applies rotation and shift as ONE affine warp with
bilinear interpolation, repeating edge pixels into the uncovered corners. The flips are
folded into the same matrix (they map pixel centres onto pixel centres, so they stay
exact). Chaining the three Keras layers instead would interpolate twice (blurring the
image) and cost three times as long; the warp itself is ``keras.ops.image.affine_transform``,
the op those layers call, so it runs on every backend (JAX needs no TensorFlow).

Batches come from a ``keras.utils.PyDataset`` whose worker threads augment and preprocess
the next batches while the model trains on the current one. Each batch's random draw
depends only on ``(seed, epoch, batch index)``, never on thread timing, so a seeded run
sees the same batches every time.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from helpers.data import preprocess

ROTATION_DEGREES = 90.0  # rotation_range=90
SHIFT_FRACTION = 0.1  # width_shift_range = height_shift_range = 0.1
FILL_MODE = "nearest"  # ImageDataGenerator's default


def random_transforms(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """Draw ``count`` augmentation warps as Keras ``affine_transform`` vectors.

    Parameters
    ----------
    rng
        The random generator to draw from.
    count, height, width
        Number of images and their size in pixels.

    Returns
    -------
    numpy.ndarray
        float32 ``(count, 8)``: rows ``[a0, a1, a2, b0, b1, b2, 0, 0]`` mapping each output
        pixel ``(x, y)`` to the input point ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``.
    """
    angle = np.deg2rad(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES, count))
    shift_x = rng.uniform(-SHIFT_FRACTION, SHIFT_FRACTION, count) * width
    shift_y = rng.uniform(-SHIFT_FRACTION, SHIFT_FRACTION, count) * height
    flip_x = rng.random(count) < 0.5
    flip_y = rng.random(count) < 0.5
    return np.stack(
        [
            affine_vector(a, sx, sy, fx, fy, height, width)
            for a, sx, sy, fx, fy in zip(angle, shift_x, shift_y, flip_x, flip_y, strict=True)
        ]
    )


def affine_vector(
    angle: float,
    shift_x: float,
    shift_y: float,
    flip_x: bool,
    flip_y: bool,
    height: int,
    width: int,
) -> np.ndarray:
    """One warp: flip, then rotate by ``angle`` (radians) about the centre, then shift.

    Returned as the 8-vector of :func:`random_transforms` (an output-to-input map).
    """
    cx, cy = (width - 1) / 2, (height - 1) / 2
    flip = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0])
    flip[0, 2] = width - 1 if flip_x else 0.0
    flip[1, 2] = height - 1 if flip_y else 0.0
    cos, sin = np.cos(angle), np.sin(angle)
    rotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    to_centre = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, cx + shift_x], [0.0, 1.0, cy + shift_y], [0.0, 0.0, 1.0]])
    m = back @ rotate @ to_centre @ flip
    return np.array([*m[0], *m[1], 0.0, 0.0], dtype=np.float32)


@functools.cache
def _warp() -> Callable[[Any, Any], Any]:
    """The batch warp, compiled once per backend where eager dispatch would be slow."""

    def warp(images: Any, transforms: Any) -> Any:
        return keras.ops.image.affine_transform(
            images, transforms, interpolation="bilinear", fill_mode=FILL_MODE
        )

    if keras.backend.backend() == "jax":
        import jax  # only on the JAX backend: eager JAX runs this op ~10x slower

        return jax.jit(warp)  # type: ignore[no-any-return]
    return warp  # one eager op on TensorFlow / torch


def augment_images(images: np.ndarray, seed: int) -> np.ndarray:
    """Randomly rotate, shift and flip a batch of images, deterministically in ``seed``.

    Parameters
    ----------
    images
        ``(N, H, W, 3)`` images with values in 0..255 (uint8 or float).
    seed
        Any non-negative integer; the same images and seed give the same output.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, H, W, 3)``, values still within the input's range (bilinear
        interpolation and nearest fill only mix existing pixel values).
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"augment_images expects (N, H, W, 3) images, got {images.shape}.")
    n, h, w = images.shape[:3]
    return warp_images(images, random_transforms(np.random.default_rng(seed), n, h, w))


def warp_images(images: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Apply one affine warp per image (bilinear, nearest fill) and return float32 NumPy.

    ``transforms`` is ``(N, 8)`` as made by :func:`random_transforms` / :func:`affine_vector`.
    """
    out = _warp()(np.asarray(images, dtype=np.float32), np.asarray(transforms, dtype=np.float32))
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)


def mix_seed(*parts: int) -> int:
    """A well-spread 31-bit seed from several integers (nearby inputs give unrelated seeds)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


def default_workers() -> int:
    """Threads preparing batches: the CPU count, at most 8 (the warp releases the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))


class AugmentedBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """Batches of preprocessed (and optionally augmented) images for ``fit``/``predict``.

    Parameters
    ----------
    x
        uint8 images ``(N, H, W, 3)``.
    y
        Integer labels ``(N,)``, or ``None`` for prediction.
    batch_size
        Images per batch (the last batch may be smaller).
    seed
        Seeds the shuffling and the augmentation of every epoch.
    augment
        Apply :func:`augment_images` (training) or only ``preprocess`` (evaluation).
    shuffle
        Reshuffle the order of the images every epoch.
    workers
        Threads that prepare batches ahead of the model (default :func:`default_workers`).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        batch_size: int,
        *,
        seed: int = 0,
        augment: bool = True,
        shuffle: bool = True,
        workers: int | None = None,
    ) -> None:
        super().__init__(
            workers=workers or default_workers(), use_multiprocessing=False, max_queue_size=8
        )
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"x must be (N, H, W, 3) images, got shape {x.shape}.")
        if len(x) == 0:
            raise ValueError("x holds no images.")
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.seed, self.augment, self.shuffle = seed, augment, shuffle
        self.epoch = 0
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        cached = self._orders.get(epoch)
        if cached is None:  # worker threads may race here; both compute the same order
            if self.shuffle:
                cached = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
            else:
                cached = np.arange(len(self.x))
            self._orders = {epoch: cached}
        return cached

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
        epoch = self.epoch  # Keras changes it only between epochs, with no batch in flight
        rows = self._order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.x[rows]
        if self.augment:
            images = augment_images(images, mix_seed(self.seed, epoch, index))
        batch = preprocess(images)
        if self.y is None:
            return (batch,)
        return batch, self.y[rows]

    def on_epoch_end(self) -> None:
        self.epoch += 1
