"""Grad-CAM maps on disk: run the agreement analysis later, without the models' weights.

:func:`save_maps` writes ``{model: {layer: maps (N, h, w)}}`` to one compressed ``.npz`` with
everything needed to read it again: model names, layer names, the indices of the images in
the test set, each model's device (where it was trained) and, optionally, the labels the
maps explain. Maps stay at each layer's own resolution (never upsampled), which keeps the
file small.

The book's stores (:func:`stored_maps_path`) are folders of one such file per model, written
by :func:`save_model_maps`: adding a seed writes its file alone, so the files already
committed never change (one file for all models grew by a model's size at every seed, and
git kept every version). :func:`load_maps` reads a file or pools a folder.

To store them in float16 without losing small values to underflow, every map is divided by
its largest absolute value first, and that scale is kept in float32; :func:`load_maps`
multiplies it back. The rank correlation and the top-region IoU do not depend on a map's
scale, so only float16's 11-bit precision remains: values closer than about 1 part in 2000
of the map's maximum can become tied. Pass ``dtype="float32"`` to keep the maps exact.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT = 1


@dataclass(frozen=True)
class StoredMaps:
    """What :func:`load_maps` returns.

    Attributes
    ----------
    maps
        ``{model: {layer: maps (N, h, w) float32}}``, models and layers in the saved order.
    image_indices
        ``(N,)`` indices of the images in the test set, in the maps' order.
    devices
        ``{model: device}``: where each model was trained (seeds may be pooled across devices).
    labels
        ``(N,)`` classes the maps explain, or ``None`` if none were saved.
    accuracies
        ``{model: true test accuracy}`` where saved (an empty dict otherwise).
    note
        Free text saved with the maps (e.g. the profile and the class explained).
    predictions
        ``{model: (N,) predicted classes}`` for the models saved with them (maps stored
        before predictions were kept have none), so that a comparison can be restricted to
        the images two models classify right, without their weights.
    """

    maps: dict[str, dict[str, npt.NDArray[np.float32]]]
    image_indices: npt.NDArray[np.int64]
    devices: dict[str, str]
    labels: npt.NDArray[np.int64] | None
    note: str
    accuracies: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)


def save_maps(
    path: str | Path,
    maps: Mapping[str, Mapping[str, npt.ArrayLike]],
    image_indices: npt.ArrayLike,
    devices: str | Mapping[str, str],
    *,
    labels: npt.ArrayLike | None = None,
    note: str = "",
    dtype: str = "float16",
    accuracies: Mapping[str, float] | None = None,
    predictions: Mapping[str, npt.ArrayLike] | None = None,
) -> Path:
    """Write per-model maps to a compressed ``.npz`` (see the module docstring).

    Parameters
    ----------
    path
        The file; ``.npz`` is appended if missing.
    maps
        ``{model: {layer: maps (N, h, w)}}``; every model with the same layers and shapes.
    image_indices
        ``(N,)`` test-set indices of the images (e.g. :func:`helpers.experiment.cam_subset`).
    devices
        One device string for all models, or ``{model: device}`` (e.g. from each run's record).
    labels
        Optional ``(N,)`` classes the maps explain.
    note
        Free text kept in the file.
    dtype
        ``"float16"`` (default, small) or ``"float32"`` (exact).
    accuracies
        Optional ``{model: true test accuracy}`` for every model, so that a reader of the
        maps knows what each model could do without its weights.
    predictions
        Optional ``{model: (N,) predicted classes}`` on the same images, for any of the
        models (a file may pool models stored with and without them).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', not {dtype!r}")
    models = list(maps)
    if not models:
        raise ValueError("no maps to save")
    layers = list(maps[models[0]])
    idx = np.asarray(image_indices, dtype=np.int64).ravel()
    dev = {m: devices for m in models} if isinstance(devices, str) else dict(devices)
    if set(dev) != set(models):
        raise ValueError(f"devices must name every model: missing {sorted(set(models) - set(dev))}")
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "format": np.array(FORMAT),
        "models": np.array(models),
        "layers": np.array(layers),
        "image_indices": idx,
        "devices": np.array([dev[m] for m in models]),
        "note": np.array(note),
    }
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64).ravel()
        if arrays["labels"].shape != idx.shape:
            raise ValueError(f"labels {arrays['labels'].shape} and indices {idx.shape} differ")
    if accuracies is not None:
        if set(accuracies) != set(models):
            raise ValueError(f"accuracies must name every model, got {sorted(accuracies)}")
        arrays["accuracies"] = np.array([float(accuracies[m]) for m in models])
    if predictions:
        unknown = sorted(set(predictions) - set(models))
        if unknown:
            raise ValueError(f"predictions of models without maps: {unknown}")
        predicted = [m for m in models if m in predictions]
        rows = [np.asarray(predictions[m], dtype=np.int64).ravel() for m in predicted]
        if any(row.shape != idx.shape for row in rows):
            raise ValueError(f"predictions must have one class per image ({len(idx)})")
        arrays["predicted_models"] = np.array(predicted)
        arrays["predictions"] = np.stack(rows)
    for i, model in enumerate(models):
        if list(maps[model]) != layers:
            raise ValueError(f"{model!r} has layers {list(maps[model])}, expected {layers}")
        for j, layer in enumerate(layers):
            m = np.asarray(maps[model][layer], dtype=np.float64)
            if m.ndim != 3 or len(m) != len(idx) or not np.isfinite(m).all():
                raise ValueError(
                    f"{model!r}/{layer}: need finite maps (N, h, w) with N = {len(idx)} "
                    f"image indices, got {m.shape}"
                )
            scale = np.abs(m).max(axis=(1, 2))
            scale = np.where(scale > 0, scale, 1.0)
            arrays[f"map_{i}_{j}"] = (m / scale[:, None, None]).astype(dtype)
            arrays[f"scale_{i}_{j}"] = scale.astype(np.float32)
    out = Path(path)
    out = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")
    # Written aside and renamed: an interrupted save leaves the stored file as it was.
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(partial, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def model_file(directory: str | Path, model: str) -> Path:
    """The file of one model in a store folder: ``"regular s1"`` -> ``regular-s1.npz``."""
    return Path(directory) / f"{model.replace(' ', '-')}.npz"


def save_model_maps(
    directory: str | Path,
    maps: Mapping[str, Mapping[str, npt.ArrayLike]],
    image_indices: npt.ArrayLike,
    devices: str | Mapping[str, str],
    *,
    accuracies: Mapping[str, float] | None = None,
    predictions: Mapping[str, npt.ArrayLike] | None = None,
    **kwargs: Any,
) -> list[Path]:
    """Write each model of ``maps`` to its own file in ``directory`` (:func:`model_file`).

    Takes :func:`save_maps`'s arguments; models of the folder not in ``maps`` are left as
    they are. Returns the files written.
    """
    dev = dict.fromkeys(maps, devices) if isinstance(devices, str) else devices
    missing = [m for m in maps if m not in dev or (accuracies is not None and m not in accuracies)]
    if missing:
        raise ValueError(f"devices and accuracies (if given) must name every model: {missing}")
    Path(directory).mkdir(parents=True, exist_ok=True)
    return [
        save_maps(
            model_file(directory, model),
            {model: maps[model]},
            image_indices,
            {model: dev[model]},
            accuracies=None if accuracies is None else {model: accuracies[model]},
            predictions=(
                {model: predictions[model]} if predictions and model in predictions else None
            ),
            **kwargs,
        )
        for model in maps
    ]


def load_maps(path: str | Path) -> StoredMaps:
    """Read a file written by :func:`save_maps`, or pool a folder of them.

    Maps come back as float32 at their scale. A folder's models come in the order of
    their kind and seed, and all its files must be of the same images and layers.
    """
    if Path(path).is_dir():
        return _pool(path)
    with np.load(path, allow_pickle=False) as f:
        if int(f["format"]) != FORMAT:
            raise ValueError(f"{path}: map file format {int(f['format'])}, expected {FORMAT}")
        models = [str(m) for m in f["models"]]
        layers = [str(layer) for layer in f["layers"]]
        maps = {
            model: {
                layer: (f[f"map_{i}_{j}"].astype(np.float32) * f[f"scale_{i}_{j}"][:, None, None])
                for j, layer in enumerate(layers)
            }
            for i, model in enumerate(models)
        }
        return StoredMaps(
            maps=maps,
            image_indices=f["image_indices"].astype(np.int64),
            devices=dict(zip(models, (str(d) for d in f["devices"]), strict=True)),
            labels=f["labels"].astype(np.int64) if "labels" in f else None,
            note=str(f["note"]),
            accuracies=(
                dict(zip(models, map(float, f["accuracies"]), strict=True))
                if "accuracies" in f
                else {}
            ),
            predictions=(
                {
                    str(m): row.astype(np.int64)
                    for m, row in zip(f["predicted_models"], f["predictions"], strict=True)
                }
                if "predictions" in f
                else {}
            ),
        )


def _pool(directory: str | Path) -> StoredMaps:
    from helpers.model_bootstrap import parse_model_name

    files = sorted(Path(directory).glob("*.npz"))
    if not files:
        raise FileNotFoundError(
            f"{directory} holds no maps: store them with scripts/save_agreement_maps.py, "
            "or remove the empty folder"
        )
    parts = [load_maps(f) for f in files]
    first = parts[0]
    for f, part in zip(files, parts, strict=True):
        same_labels = (
            part.labels is None
            if first.labels is None
            else part.labels is not None and np.array_equal(part.labels, first.labels)
        )
        layers = list(next(iter(part.maps.values())))
        if (
            not np.array_equal(part.image_indices, first.image_indices)
            or not same_labels
            or layers != list(next(iter(first.maps.values())))
        ):
            raise ValueError(
                f"{f} holds maps of other images or layers than {files[0].name}: a folder "
                "pools one experiment's models; move it away or store it again"
            )
    names = [m for part in parts for m in part.maps]
    if len(set(names)) != len(names):
        raise ValueError(f"{directory}: a model is stored in two files ({sorted(names)})")
    order = sorted(names, key=parse_model_name)

    def merged(field_name: str) -> dict[str, Any]:
        found = {k: v for part in parts for k, v in getattr(part, field_name).items()}
        return {m: found[m] for m in order if m in found}

    return StoredMaps(
        maps=merged("maps"),
        image_indices=first.image_indices,
        devices=merged("devices"),
        labels=first.labels,
        note=first.note,
        accuracies=merged("accuracies"),
        predictions=merged("predictions"),
    )


# The three kinds of training chapter 5 compares, and the loss of each.
AGREEMENT_KINDS = {"regular": "crossentropy", "article": "article", "forward": "forward"}


def stored_maps_path(
    profile: str,
    directory: str | Path | None = None,
    classes: Sequence[str] | None = None,
    *,
    overrides: str = "",
) -> Path:
    """The folder of the agreement maps of ``profile``: ``<results>/maps/<profile>/``.

    It holds a file per model (:func:`save_model_maps`). Models trained with overridden
    settings (``overrides``, a tag from :func:`maps_tag`, e.g. ``image_size299``) and maps of
    other classes than the book's three (chapter 8's four) get those in the name, as their
    runs do: ``laptop-image_size299``, ``laptop-airplanes-watch-leopards-motorbikes``.
    """
    from helpers.experiment import classes_tag
    from helpers.results import results_dir

    parts = [profile, overrides, classes_tag(classes) if classes is not None else ""]
    name = "-".join(filter(None, parts))
    return (Path(directory) if directory is not None else results_dir()) / "maps" / name


def maps_tag(profile: Any) -> str:
    """The tag of ``profile``'s overrides that change its models (as in their run names)."""
    from helpers.profiles import override_tag
    from helpers.training import TRAINING_FIELDS

    return override_tag(profile, TRAINING_FIELDS) if getattr(profile, "extra", None) else ""


def agreement_maps(
    exp: Any,
    profile: Any,
    kinds: Mapping[str, str] = AGREEMENT_KINDS,
    *,
    directory: str | Path | None = None,
) -> tuple[StoredMaps, str]:
    """The true-class maps of every model chapter 5 compares, and where they came from.

    A real profile reads the maps stored by ``scripts/save_agreement_maps.py`` (five seeds
    per kind take hours on a CPU; their maps take a few MB). Without a stored file (the
    ``smoke`` profile, or a profile nobody stored) the models of ``profile.seeds`` are trained
    or loaded, and their maps computed here, with the same code as the script. Returns the
    maps and ``"stored"`` or ``"computed"``. Only the models of ``kinds`` are returned: the
    stored file may also hold other losses' maps (chapter 8's), which chapter 5 does not compare.
    """
    from helpers.experiment import cam_subset
    from helpers.model_bootstrap import parse_model_name

    idx = cam_subset(exp.dataset.y_test, profile.cam_images)
    path = stored_maps_path(
        profile.name, directory, exp.dataset.class_names, overrides=maps_tag(profile)
    )
    if path.exists():
        stored = load_maps(path)
        if not np.array_equal(stored.image_indices, idx):
            raise ValueError(
                f"{path} holds maps of other test images than this profile's "
                f"{len(idx)}; recompute them with scripts/save_agreement_maps.py"
            )
        keep = [m for m in stored.maps if parse_model_name(m)[0] in kinds]
        return dataclasses.replace(
            stored,
            maps={m: stored.maps[m] for m in keep},
            devices={m: stored.devices[m] for m in keep},
            accuracies={m: a for m, a in stored.accuracies.items() if m in keep},
            predictions={m: p for m, p in stored.predictions.items() if m in keep},
        ), "stored"
    return compute_agreement_maps(exp, profile, profile.seeds, kinds), "computed"


def compute_agreement_maps(
    exp: Any,
    profile: Any,
    seeds: Sequence[int],
    kinds: Mapping[str, str] = AGREEMENT_KINDS,
    *,
    train: bool = True,
    skip: Collection[str] = (),
) -> StoredMaps:
    """Maps of the true class at every residual stage, for each kind and seed (``"regular s0"``).

    With ``train=False`` only runs already on disk are used (the script's mode); otherwise a
    missing run is trained. Models named in ``skip`` are left out (those stored already:
    a 299-px model takes minutes on a CPU). Accuracies are the models' true test accuracies;
    predictions their predicted classes on the maps' images.
    """
    from helpers.comparisons import true_class_maps
    from helpers.data import preprocess
    from helpers.experiment import cam_subset, is_trained, score_run, train_run
    from helpers.gradcam import residual_stages
    from helpers.manifest import device_name

    ds = exp.dataset
    idx = cam_subset(ds.y_test, profile.cam_images)
    x, y = preprocess(ds.x_test[idx]), ds.y_test[idx]
    maps: dict[str, dict[str, npt.NDArray[np.float32]]] = {}
    accuracies, predictions = {}, {}
    skipped = 0
    for kind, loss in kinds.items():
        for seed in seeds:
            if not train and not is_trained(exp, loss, seed, profile):
                continue
            if f"{kind} s{seed}" in skip:
                skipped += 1
                continue
            model = train_run(exp, loss, seed, profile, verbose=False).model
            name = f"{kind} s{seed}"
            maps.update(true_class_maps({name: model}, x, y, residual_stages(model)))
            scores = score_run(exp, model)
            accuracies[name] = float(scores["true_accuracy"])
            predictions[name] = np.argmax(scores["probabilities"][idx], axis=1).astype(np.int64)
    if not maps and not skipped:
        raise FileNotFoundError(f"no trained model of {sorted(kinds)} for seeds {list(seeds)}")
    devices = {m: device_name() for m in maps}
    return StoredMaps(maps, idx, devices, y, "", accuracies, predictions)
