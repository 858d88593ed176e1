"""The loader: selection, sampling, RGB loading, stratified split, prepared-array cache.

Most tests use small synthetic class folders made in a temporary directory; the last ones
check the default counts on the real Caltech101 images when ``CALTECH101_DIR`` is set.
"""

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from helpers.data import (
    DEFAULT_CLASSES,
    class_counts,
    counts_table,
    deprocess,
    format_table,
    image_size_stats,
    label_counts,
    load_dataset,
    load_image,
    preprocess,
    sample_paths,
    show_samples,
    split_sizes,
    stratified_split,
)

matplotlib.use("Agg")

SIZES = {"airplanes": 20, "watch": 12, "Leopards": 9}


@pytest.fixture
def data_dir(tmp_path):
    """Three class folders of small JPEGs of varied sizes; one grayscale, one corrupt."""
    root = tmp_path / "101_ObjectCategories"
    rng = np.random.default_rng(0)
    for name, n in SIZES.items():
        (root / name).mkdir(parents=True)
        for i in range(1, n + 1):
            pixels = rng.integers(0, 256, (30 + i, 40 + 2 * i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"image_{i:04d}.jpg")
    Image.fromarray(np.full((25, 35), 90, np.uint8), "L").save(root / "watch" / "image_0003.jpg")
    (root / "Leopards" / "image_0005.jpg").write_bytes(b"not a jpeg at all")
    (root / "Motorbikes").mkdir()
    return root


def load(data_dir, tmp_path, **kw):
    kw.setdefault("max_per_class", {"airplanes": 10})
    kw.setdefault("cache_dir", tmp_path / "cache")
    with pytest.warns(UserWarning, match="Leopards/image_0005.jpg"):
        return load_dataset(kw.pop("image_size", 16), data_dir=data_dir, **kw)


def cache_files(tmp_path):
    return sorted((tmp_path / "cache" / "prepared").iterdir())


def test_preprocess_and_deprocess():
    images = np.array([[0, 127.5, 255]], dtype=np.float64)
    x = preprocess(images)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(preprocess(np.array([0, 255], np.uint8)), [-1.0, 1.0])
    back = deprocess(x)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(deprocess(np.array([-3.0, 3.0])), [0.0, 1.0])  # clipped


def test_grayscale_image_becomes_rgb(data_dir):
    image = load_image(data_dir / "watch" / "image_0003.jpg", 8)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 2])
    assert abs(int(image.mean()) - 90) <= 2


def test_dataset_shapes_labels_and_corrupt_image_reported(data_dir, tmp_path):
    ds = load(data_dir, tmp_path)
    assert ds.class_names == DEFAULT_CLASSES
    assert ds.skipped == ["Leopards/image_0005.jpg"]
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (16, 16, 3)
    assert ds.y_train.dtype == np.int64
    assert len(ds.y_train) + len(ds.y_test) == 10 + 12 + 8
    assert len(ds.paths_train) == len(ds.x_train) and len(ds.paths_test) == len(ds.x_test)
    for paths, y in ((ds.paths_train, ds.y_train), (ds.paths_test, ds.y_test)):
        assert [ds.class_names[k] for k in y] == [p.split("/")[0] for p in paths]
    assert "watch/image_0003.jpg" in ds.paths_train + ds.paths_test


def test_pixels_match_the_files(data_dir, tmp_path):
    ds = load(data_dir, tmp_path)
    rel = ds.paths_test[0]
    assert np.array_equal(ds.x_test[0], load_image(data_dir / rel, 16))


def test_unknown_class_lists_available_ones(data_dir, tmp_path):
    with pytest.raises(ValueError, match="Unknown class 'cats'.*Leopards, Motorbikes, airplanes"):
        load_dataset(16, classes=("airplanes", "cats"), data_dir=data_dir, cache_dir=tmp_path)


def test_parent_folder_gets_a_hint(data_dir):
    with pytest.raises(ValueError, match="Point at .*101_ObjectCategories instead"):
        sample_paths(data_dir.parent)


def test_cap_for_unselected_class_is_an_error(data_dir):
    with pytest.raises(ValueError, match="not selected"):
        sample_paths(data_dir, ("watch",), {"airplanes": 3})


def test_sampling_is_deterministic_and_seeded(data_dir):
    a = sample_paths(data_dir, max_per_class={"airplanes": 10}, seed=0)
    assert a == sample_paths(data_dir, max_per_class={"airplanes": 10}, seed=0)
    assert (
        a["airplanes"]
        != sample_paths(data_dir, max_per_class={"airplanes": 10}, seed=1)["airplanes"]
    )
    assert len(a["airplanes"]) == 10 and a["airplanes"] == sorted(a["airplanes"])
    assert len(a["watch"]) == 12 and len(a["Leopards"]) == 9  # uncapped: all files
    alone = sample_paths(data_dir, ("airplanes",), {"airplanes": 10}, seed=0)
    assert alone["airplanes"] == a["airplanes"]  # independent of the other classes
    every = sample_paths(data_dir, max_per_class=5)
    assert [len(v) for v in every.values()] == [5, 5, 5]


def test_split_sizes_default_counts():
    assert split_sizes([200, 239, 200], 0.2) == [40, 48, 40]
    assert split_sizes([160, 191, 160], 0.2) == [32, 38, 32]  # validation carved from train
    assert sum(split_sizes([7, 7, 7], 0.5)) == 11  # round(10.5) -> ties to the earlier class
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_sizes([10], 1.0)


def test_stratified_split_proportions_and_determinism():
    y = np.repeat([0, 1, 2], [200, 239, 200])
    keep, split = stratified_split(y, 0.2, seed=3)
    assert len(keep) == 511 and len(split) == 128
    assert np.bincount(y[split]).tolist() == [40, 48, 40]
    assert np.intersect1d(keep, split).size == 0
    assert np.array_equal(np.union1d(keep, split), np.arange(len(y)))
    again = stratified_split(y, 0.2, seed=3)
    assert np.array_equal(again[1], split)
    assert not np.array_equal(stratified_split(y, 0.2, seed=4)[1], split)


def test_cache_hit_returns_identical_arrays(data_dir, tmp_path):
    first = load(data_dir, tmp_path)
    assert not first.from_cache
    second = load_dataset(16, data_dir=data_dir, max_per_class={"airplanes": 10},
                          cache_dir=tmp_path / "cache")  # fmt: skip
    assert second.from_cache
    for name in ("x_train", "y_train", "x_test", "y_test"):
        a, b = getattr(first, name), getattr(second, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert second.paths_train == first.paths_train and second.paths_test == first.paths_test
    assert second.class_names == first.class_names and second.skipped == first.skipped
    assert [p.suffix for p in cache_files(tmp_path)] == [".npz"]  # no temporary files left


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 1},
        {"image_size": 12},
        {"test_fraction": 0.25},
        {"max_per_class": {"airplanes": 11}},
        {"classes": ("Leopards", "watch", "airplanes"), "max_per_class": {"airplanes": 10}},
    ],
)
def test_cache_key_changes_with_parameters(data_dir, tmp_path, change):
    load(data_dir, tmp_path)
    changed = load(data_dir, tmp_path, **change)
    assert not changed.from_cache
    assert len(cache_files(tmp_path)) == 2


def test_cache_key_changes_when_a_file_changes(data_dir, tmp_path):
    ds = load(data_dir, tmp_path)
    rel = ds.paths_train[0]
    Image.new("RGB", (50, 50), (1, 2, 3)).save(data_dir / rel)
    assert not load(data_dir, tmp_path).from_cache


def test_corrupt_cache_is_rebuilt(data_dir, tmp_path):
    first = load(data_dir, tmp_path)
    (path,) = cache_files(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # damage inside an array
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged data cache"):
        rebuilt = load(data_dir, tmp_path)
    assert not rebuilt.from_cache
    assert np.array_equal(rebuilt.x_train, first.x_train)
    assert load_dataset(16, data_dir=data_dir, max_per_class={"airplanes": 10},
                        cache_dir=tmp_path / "cache").from_cache  # fmt: skip


def test_truncated_cache_is_rebuilt(data_dir, tmp_path):
    load(data_dir, tmp_path)
    (path,) = cache_files(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged data cache"):
        assert not load(data_dir, tmp_path).from_cache


def test_cache_can_be_turned_off(data_dir, tmp_path):
    load(data_dir, tmp_path, use_cache=False)
    assert not (tmp_path / "cache").exists()


def test_image_size_comes_from_profile(data_dir, tmp_path):
    ds = load(data_dir, tmp_path, image_size=None, profile="smoke")
    assert ds.x_train.shape[1:] == (71, 71, 3)


def test_image_size_stats(data_dir):
    stats = image_size_stats(data_dir)
    assert stats["watch"]["images"] == 12 and stats["watch"]["non_rgb"] == 1
    assert stats["Leopards"]["unreadable"] == 1 and stats["Leopards"]["images"] == 8
    assert stats["airplanes"]["width_min"] == 42 and stats["airplanes"]["width_max"] == 80
    assert stats["airplanes"]["height_median"] == 40  # heights 31..50: 40.5 rounds to even
    assert stats["airplanes"]["aspect_median"] == round(float(np.median(
        [(40 + 2 * i) / (30 + i) for i in range(1, 21)])), 2)  # fmt: skip


def test_counts_table_and_format(data_dir, tmp_path):
    ds = load(data_dir, tmp_path)
    rows = counts_table(ds, data_dir)
    assert [r["available"] for r in rows] == [20, 12, 9, 41]
    assert [r["sampled"] for r in rows] == [10, 12, 9, 31]
    assert rows[-1]["skipped"] == 1
    assert rows[-1]["train"] + rows[-1]["test"] == 30
    text = format_table(rows).splitlines()
    assert text[0].split() == ["class", "available", "sampled", "skipped", "train", "test"]
    assert text[-1].split()[:3] == ["all", "41", "31"]
    assert class_counts(data_dir) == SIZES


def test_label_counts():
    assert label_counts(np.array([2, 0, 2]), ("a", "b", "c")) == {"a": 1, "b": 0, "c": 2}


def test_show_samples_grid(data_dir, tmp_path):
    ds = load(data_dir, tmp_path)
    fig = show_samples(ds, per_class=4)
    assert len(fig.axes) == 12
    assert [ax.get_title(loc="left") for ax in fig.axes[::4]] == list(DEFAULT_CLASSES)


REAL = os.environ.get("CALTECH101_DIR")


@pytest.mark.skipif(
    not REAL or not Path(REAL).is_dir(),
    reason="real Caltech101 images absent: set CALTECH101_DIR to a 101_ObjectCategories folder",
)
def test_default_counts_on_real_images(tmp_path):
    assert class_counts(REAL) == {"airplanes": 800, "watch": 239, "Leopards": 200}
    ds = load_dataset(71, data_dir=REAL, cache_dir=tmp_path)
    assert ds.skipped == []
    assert len(ds.y_train) + len(ds.y_test) == 639
    assert (len(ds.y_train), len(ds.y_test)) == (511, 128)
    assert np.bincount(ds.y_train).tolist() == [160, 191, 160]
    assert np.bincount(ds.y_test).tolist() == [40, 48, 40]
    assert ds.x_train.shape == (511, 71, 71, 3)
    assert len(set(ds.paths_train) | set(ds.paths_test)) == 639


@pytest.mark.skipif(
    not REAL or not Path(REAL).is_dir() or not (Path(REAL) / "Motorbikes").is_dir(),
    reason="real Caltech101 images with Motorbikes absent: set CALTECH101_DIR",
)
def test_motorbikes_are_capped_like_airplanes_on_real_images():
    four = ("airplanes", "watch", "Leopards", "Motorbikes")
    sampled = sample_paths(REAL, four)
    assert {name: len(paths) for name, paths in sampled.items()} == {
        "airplanes": 200,
        "watch": 239,
        "Leopards": 200,
        "Motorbikes": 200,
    }
    # Adding a class changes no other class's sample.
    assert sample_paths(REAL)["airplanes"] == sampled["airplanes"]
