"""The three-class Caltech101 data set of the book: select, sample, load, split, cache.

At the defaults (airplanes 200 of 800 sampled, watch 239, Leopards 200: 639 images) the
stratified 80/20 split gives

=========  =====  =====  ====
class      total  train  test
=========  =====  =====  ====
airplanes    200    160    40
watch        239    191    48
Leopards     200    160    40
all          639    511   128
=========  =====  =====  ====

The prepared arrays are cached (``np.savez``) under a key made of every parameter that
affects them, so later chapters load them in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from helpers.download import cache_dir, find_data_dir
from helpers.profiles import Profile, get_profile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_CLASSES: tuple[str, ...] = ("airplanes", "watch", "Leopards")
# The original sampled 200 of the 800 airplanes; Motorbikes (798, the four-class experiment)
# is capped the same way so that no class dominates.
DEFAULT_MAX_PER_CLASS: dict[str, int] = {"airplanes": 200, "Motorbikes": 200}
CACHE_FORMAT = 1  # bump when the preparation itself changes (resizing, layout, ...)
_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "paths_train", "paths_test")


@dataclass
class Dataset:
    """The prepared images and labels.

    Attributes
    ----------
    x_train, x_test
        ``uint8`` RGB images, shape ``(N, size, size, 3)``.
    y_train, y_test
        ``int64`` class indices into ``class_names``.
    paths_train, paths_test
        Image paths relative to the ``101_ObjectCategories`` folder, aligned with ``x``.
    class_names
        Class folder names, in label order.
    skipped
        Relative paths of sampled images that could not be read (left out).
    from_cache
        Whether the arrays came from the prepared-data cache.
    """

    x_train: NDArray[np.uint8]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.uint8]
    y_test: NDArray[np.int64]
    paths_train: list[str]
    paths_test: list[str]
    class_names: tuple[str, ...]
    skipped: list[str]
    from_cache: bool = False


def preprocess(images: ArrayLike) -> NDArray[np.float32]:
    """Scale pixels from 0..255 to [-1, 1] (``x / 127.5 - 1``, the Xception convention)."""
    return np.asarray(images, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def deprocess(x: ArrayLike) -> NDArray[np.float32]:
    """Invert :func:`preprocess` to [0, 1] floats for display (clipped)."""
    out: NDArray[np.float32] = (np.asarray(x, dtype=np.float32) + np.float32(1.0)) / np.float32(2.0)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def available_classes(data_dir: Path | str) -> list[str]:
    """Class folder names in ``data_dir``, sorted."""
    return sorted(p.name for p in Path(data_dir).iterdir() if p.is_dir() and p.name[0] != ".")


def list_images(data_dir: Path | str, class_name: str) -> list[str]:
    """Sorted paths (``class/file``, relative to ``data_dir``) of the files of a class.

    Raises
    ------
    ValueError
        For an unknown class; the message lists the available ones.
    """
    folder = Path(data_dir) / class_name
    if not folder.is_dir():
        hint = ""
        if (Path(data_dir) / "101_ObjectCategories").is_dir():
            hint = f" Point at {Path(data_dir) / '101_ObjectCategories'} instead (its sub-folder)."
        raise ValueError(
            f"Unknown class {class_name!r} in {data_dir}. Available classes: "
            + ", ".join(available_classes(data_dir))
            + "."
            + hint
        )
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name[0] != ".")
    return [f"{class_name}/{name}" for name in names]


def resolve_caps(
    classes: Sequence[str], max_per_class: int | Mapping[str, int] | None
) -> dict[str, int | None]:
    """Per-class sample caps: ``None`` means the default (airplanes and Motorbikes 200), an
    int caps every class, a mapping caps the classes it names (``{}``: no cap at all)."""
    if max_per_class is None:
        max_per_class = {c: n for c, n in DEFAULT_MAX_PER_CLASS.items() if c in classes}
    if isinstance(max_per_class, int):
        return dict.fromkeys(classes, max_per_class)
    unknown = set(max_per_class) - set(classes)
    if unknown:
        raise ValueError(f"max_per_class names classes not selected: {sorted(unknown)}.")
    return {c: max_per_class.get(c) for c in classes}


def sample_paths(
    data_dir: Path | str,
    classes: Sequence[str] = DEFAULT_CLASSES,
    max_per_class: int | Mapping[str, int] | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Sample at most the capped number of images per class, reproducibly.

    Each class draws from its own generator (seeded by ``seed`` and the class name), so a
    class's sample does not depend on which other classes are selected. Paths stay sorted.
    """
    caps = resolve_caps(classes, max_per_class)
    sampled = {}
    for name in classes:
        paths = list_images(data_dir, name)
        cap = caps[name]
        if cap is not None and cap < len(paths):
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            keep = np.sort(rng.choice(len(paths), size=cap, replace=False))
            paths = [paths[i] for i in keep]
        sampled[name] = paths
    return sampled


def class_counts(
    data_dir: Path | str | None = None, classes: Sequence[str] = DEFAULT_CLASSES
) -> dict[str, int]:
    """Number of image files available per class."""
    root = find_data_dir(data_dir)
    return {name: len(list_images(root, name)) for name in classes}


def load_image(path: Path | str, size: int) -> NDArray[np.uint8]:
    """Read an image as RGB (grayscale and palette images too) and resize it to
    ``size`` x ``size`` with area interpolation (the aspect ratio is not kept)."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    return np.asarray(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA), np.uint8)


def load_images(
    data_dir: Path | str, paths: Sequence[str], size: int
) -> tuple[NDArray[np.uint8], list[str], list[str]]:
    """Load ``paths``; return the images, the paths read and the paths that failed."""
    images, kept, skipped = [], [], []
    for rel in paths:
        try:
            images.append(load_image(Path(data_dir) / rel, size))
            kept.append(rel)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(rel)
    x = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return x, kept, skipped


def split_sizes(counts: Sequence[int], fraction: float) -> list[int]:
    """Per-class split sizes summing to ``round(fraction * total)`` (largest remainders).

    Example: counts (200, 239, 200) at 0.2 give (40, 48, 40), 128 in all.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"The split fraction must lie strictly between 0 and 1, not {fraction}.")
    exact = np.asarray(counts, dtype=np.float64) * fraction
    sizes = np.floor(exact).astype(np.int64)
    missing = int(np.floor(exact.sum() + 0.5)) - int(sizes.sum())
    order = np.argsort(-(exact - sizes), kind="stable")  # ties go to the earlier class
    sizes[order[:missing]] += 1
    return [int(s) for s in sizes]


def stratified_split(
    y: ArrayLike, fraction: float, seed: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Split indices of ``y`` into (kept, split), the split holding ``fraction`` of every
    class (sizes from :func:`split_sizes`). Both index arrays come back sorted."""
    labels = np.asarray(y).reshape(-1)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    sizes = split_sizes([len(m) for m in members], fraction)
    rng = np.random.default_rng(seed)
    split = [rng.permutation(m)[:n] for m, n in zip(members, sizes, strict=True)]
    idx_split = np.sort(np.concatenate(split)).astype(np.int64)
    idx_keep = np.setdiff1d(np.arange(len(labels)), idx_split).astype(np.int64)
    return idx_keep, idx_split


def cache_key(
    data_dir: Path, sampled: Mapping[str, Sequence[str]], seed: int, fraction: float, size: int
) -> str:
    """SHA-256 over everything that shapes the arrays, file sizes included."""
    files = [[rel, (data_dir / rel).stat().st_size] for paths in sampled.values() for rel in paths]
    spec = {"format": CACHE_FORMAT, "classes": list(sampled), "seed": seed,
            "test_fraction": fraction, "size": size, "files": files}  # fmt: skip
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def prepare(
    data_dir: Path, sampled: Mapping[str, Sequence[str]], size: int, seed: int, fraction: float
) -> Dataset:
    """Load the sampled images, label them and split them (no caching)."""
    classes = tuple(sampled)
    paths = [rel for name in classes for rel in sampled[name]]
    x, kept, skipped = load_images(data_dir, paths, size)
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} unreadable image(s): {', '.join(skipped)}", stacklevel=3
        )
    y = np.array([classes.index(rel.split("/")[0]) for rel in kept], dtype=np.int64)
    train, test = stratified_split(y, fraction, seed)
    return Dataset(x[train], y[train], x[test], y[test], [kept[i] for i in train],
                   [kept[i] for i in test], classes, skipped)  # fmt: skip


def save_cached(path: Path, ds: Dataset, key: str) -> None:
    """Write ``ds`` to ``path`` atomically (temporary file, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        arrays: dict[str, Any] = {k: np.asarray(getattr(ds, k)) for k in _ARRAYS}
        arrays["paths_train"] = np.array(ds.paths_train, dtype=str)  # never object arrays
        arrays["paths_test"] = np.array(ds.paths_test, dtype=str)
        arrays["class_names"] = np.array(ds.class_names, dtype=str)
        arrays["skipped"] = np.array(ds.skipped, dtype=str)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cached(path: Path, key: str, size: int) -> Dataset | None:
    """The cached data set at ``path``, or ``None`` when absent, stale or corrupt."""
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            arrays: dict[str, Any] = {k: f[k] for k in f.files}  # reading checks each CRC
        ds = Dataset(
            x_train=arrays["x_train"],
            y_train=arrays["y_train"],
            x_test=arrays["x_test"],
            y_test=arrays["y_test"],
            paths_train=arrays["paths_train"].tolist(),
            paths_test=arrays["paths_test"].tolist(),
            class_names=tuple(arrays["class_names"].tolist()),
            skipped=arrays["skipped"].tolist(),
            from_cache=True,
        )
        if str(arrays["key"]) != key or not _consistent(ds, size):
            raise ValueError("contents do not match the request")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, TypeError) as err:
        warnings.warn(f"Ignoring the damaged data cache {path.name} ({err}); rebuilding it.",
                      stacklevel=3)  # fmt: skip
        return None
    return ds


def _consistent(ds: Dataset, size: int) -> bool:
    """Whether the arrays of ``ds`` have the dtypes, shapes and label range they must."""
    k = len(ds.class_names)
    return all(
        x.dtype == np.uint8 and x.shape[1:] == (size, size, 3) and y.dtype == np.int64
        and len(x) == len(y) == len(p) and (y.size == 0 or (y.min() >= 0 and y.max() < k))
        for x, y, p in ((ds.x_train, ds.y_train, ds.paths_train),
                        (ds.x_test, ds.y_test, ds.paths_test))
    )  # fmt: skip


def load_dataset(
    image_size: int | None = None,
    *,
    classes: Sequence[str] = DEFAULT_CLASSES,
    max_per_class: int | Mapping[str, int] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    data_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
    profile: Profile | str | None = None,
    use_cache: bool = True,
) -> Dataset:
    """The book's data set: sampled, RGB, resized, split 80/20 stratified, cached.

    Parameters
    ----------
    image_size
        Side of the square images; ``None`` takes the profile's.
    classes
        Class folder names, in label order.
    max_per_class
        Sample cap: ``None`` for the original study's (200 airplanes, the other classes
        whole), an int for every class, or a mapping per class (``{}``: no cap).
    seed
        Seed of the sampling and of the split.
    test_fraction
        Share of every class held out for testing.
    data_dir
        The ``101_ObjectCategories`` folder; ``None``: ``$CALTECH101_DIR``, the cache, or a
        download (see :func:`helpers.download.find_data_dir`).
    cache_dir
        Where prepared arrays (and a download) are cached; ``None``: ``$BOOK_CACHE_DIR`` or
        ``~/.cache/wrong-labels-book``.
    profile
        Profile (or its name) whose image size is used when ``image_size`` is ``None``.
    use_cache
        Read and write the prepared-array cache.

    Returns
    -------
    Dataset
        At the defaults: 511 training and 128 test images (see the module docstring).
        Unreadable images are left out, listed in ``Dataset.skipped`` and warned about.
    """
    if image_size is None:
        image_size = (profile if isinstance(profile, Profile) else get_profile(profile)).image_size
    root = find_data_dir(data_dir, cache=cache_dir)
    sampled = sample_paths(root, classes, max_per_class, seed)
    key = cache_key(root, sampled, seed, test_fraction, image_size)
    path = _cache_root(cache_dir) / f"caltech101-{image_size}px-{key[:20]}.npz"
    if use_cache and (cached := load_cached(path, key, image_size)) is not None:
        return cached
    ds = prepare(root, sampled, image_size, seed, test_fraction)
    if use_cache:
        save_cached(path, ds, key)
    return ds


def _cache_root(directory: Path | str | None) -> Path:
    return cache_dir(directory) / "prepared"


def image_size_stats(
    data_dir: Path | str | None = None, classes: Sequence[str] = DEFAULT_CLASSES
) -> dict[str, dict[str, float]]:
    """Original sizes and colour modes of every file of each class (headers only).

    Returns, per class, ``images``, ``non_rgb`` (grayscale, palette, CMYK ... files),
    ``unreadable``, ``width_min``/``_median``/``_max``, the same for ``height``, and
    ``aspect_median`` (width / height, two decimals).
    """
    root = find_data_dir(data_dir)
    stats = {}
    for name in classes:
        sizes, non_rgb, unreadable = [], 0, 0
        for rel in list_images(root, name):
            try:
                with Image.open(root / rel) as im:
                    sizes.append(im.size)
                    non_rgb += im.mode != "RGB"
            except OSError:
                unreadable += 1
        wh = np.array(sizes or [(0, 1)], dtype=np.float64)
        row: dict[str, float] = {"images": len(sizes), "non_rgb": non_rgb, "unreadable": unreadable}
        for i, dim in enumerate(("width", "height")):
            row[f"{dim}_min"] = int(wh[:, i].min())
            row[f"{dim}_median"] = round(float(np.median(wh[:, i])))
            row[f"{dim}_max"] = int(wh[:, i].max())
        row["aspect_median"] = round(float(np.median(wh[:, 0] / wh[:, 1])), 2)
        stats[name] = row
    return stats


def label_counts(y: ArrayLike, class_names: Sequence[str]) -> dict[str, int]:
    """How many labels of each class ``y`` holds, by class name (zeros included)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64).reshape(-1), minlength=len(class_names))
    return {name: int(n) for name, n in zip(class_names, counts, strict=True)}


def counts_table(ds: Dataset, data_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """Rows ``class, available, sampled, skipped, train, test`` and a final ``all`` row."""
    available = class_counts(data_dir, ds.class_names)
    rows: list[dict[str, Any]] = []
    for k, name in enumerate(ds.class_names):
        train, test = int(np.sum(ds.y_train == k)), int(np.sum(ds.y_test == k))
        skipped = sum(rel.split("/")[0] == name for rel in ds.skipped)
        rows.append({"class": name, "available": available[name],
                     "sampled": train + test + skipped, "skipped": skipped,
                     "train": train, "test": test})  # fmt: skip
    total = {key: sum(r[key] for r in rows) for key in rows[0] if key != "class"}
    return [*rows, {"class": "all", **total}]


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of equal keys as an aligned plain-text table (text first column, numbers right)."""
    keys = list(rows[0])
    cells = [keys] + [[str(r[k]) for k in keys] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(keys))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)])

    return "\n".join(line(row) for row in cells)


def show_samples(ds: Dataset, per_class: int = 6, seed: int = 0, dpi: int = 80) -> Figure:
    """A grid of training images: one row per class, ``per_class`` random images each."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    n = len(ds.class_names)
    fig, axes = plt.subplots(n, per_class, figsize=(1.3 * per_class, 1.4 * n), dpi=dpi,
                             squeeze=False)  # fmt: skip
    for k, name in enumerate(ds.class_names):
        members = np.flatnonzero(ds.y_train == k)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for j, ax in enumerate(axes[k]):
            ax.set_axis_off()
            if j < len(chosen):
                ax.imshow(ds.x_train[chosen[j]])
        axes[k][0].set_title(name, loc="left", fontsize=9)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it; no second copy from the inline backend
    return fig
