"""The original figure at two input sizes: sizes, models on disk, shared pairs, the figure."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from test_gradcam import images, tiny_model

from helpers import artifacts
from helpers import resolution as res
from helpers.comparisons import comparison_design, true_class_maps
from helpers.experiment import run_name
from helpers.gradcam import grad_cam
from helpers.profiles import PROFILES, override_tag
from helpers.training import run_directory


def test_each_profile_compares_its_own_size_with_a_larger_one():
    sized = res.resolution_profiles(PROFILES["laptop"])
    assert list(sized) == [96, res.ORIGINAL_SIZE]
    assert [p.image_size for p in sized.values()] == [96, 299]
    # 96 px is the laptop's own size: its runs are the book's, 299 px the ablation's arm
    assert override_tag(sized[96]) == "" and override_tag(sized[299]) == "image_size299"
    assert all(p.learning_rate == PROFILES["laptop"].learning_rate for p in sized.values())
    small, large = res.resolution_profiles(PROFILES["smoke"])
    assert small < large


def test_the_smoke_sizes_differ_in_the_middle_map_as_96_and_299_px_do():
    from helpers.gradcam import MIDDLE
    from helpers.xception import build_xception

    def middle_cells(size):
        model = build_xception((size, size, 3), 3, seed=0)
        return tuple(model.get_layer(MIDDLE).output.shape[1:3])

    small, large = res.resolution_profiles(PROFILES["smoke"])
    assert middle_cells(small) < middle_cells(large)  # what the smoke run of the chapter shows
    assert middle_cells(large - 1) == middle_cells(small)  # and no smaller size would do


def test_a_profile_without_sizes_is_refused_with_the_place_to_add_them():
    mine = dataclasses.replace(PROFILES["laptop"], name="desktop")
    with pytest.raises(ValueError, match="RESOLUTIONS"):
        res.resolution_profiles(mine)


def test_the_shared_design_keeps_only_pairs_of_available_models():
    design = comparison_design((0, 1), "article")
    shared = res.shared_design(design, ["article s0", "regular s0", "regular s1"])
    assert shared == {
        "regular vs article": [("regular s1", "article s0")],
        "regular vs regular (control)": [("regular s0", "regular s1")],
        "same start: regular vs article": [("regular s0", "article s0")],
    }  # "article vs article" needs article s1: dropped, not left empty
    assert res.shared_design(design, ["regular s0"]) == {}


def test_map_cells_reads_each_layers_grid():
    maps = {"a": np.zeros((4, 3, 3)), "b": np.zeros((4, 10, 12))}
    assert res.map_cells(maps) == {"a": (3, 3), "b": (10, 12)}


def test_model_names_must_name_a_kind_and_a_seed():
    for bad in ("regular", "forward s0", "regular sX"):
        with pytest.raises(ValueError, match="<kind> s<seed>"):
            res.gather_sized_runs(
                PROFILES["smoke"], {"regular": "crossentropy"}, [bad], train_missing=False
            )


def test_runs_not_on_disk_are_listed_not_trained(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ARTIFACTS_DIR", str(tmp_path))
    classes = ("airplanes", "watch", "Leopards")
    fake = SimpleNamespace(dataset=SimpleNamespace(class_names=classes))
    monkeypatch.setattr(res, "prepare_experiment", lambda profile: fake)
    trained = []

    def train_run(exp, loss, seed, profile, precision=None):
        trained.append((profile.image_size, loss, seed))
        return SimpleNamespace(model=f"{loss}-{seed}-{profile.image_size}")

    monkeypatch.setattr(res, "train_run", train_run)
    laptop = PROFILES["laptop"]
    # a finished 299-px regular seed-0 run, where train_run would save it
    big = res.resolution_profiles(laptop)[299]
    done = run_directory(run_name("crossentropy", None, classes), big, 0, "float32")
    done.mkdir(parents=True)
    (done / artifacts.MARKER).write_text("")
    (done / artifacts.WEIGHTS).write_text("")
    assert done.name == "regular-image_size299-seed0"

    losses = {"regular": "crossentropy", "article": "article"}
    runs = res.gather_sized_runs(
        laptop, losses, ["regular s0", "article s0"], train_missing=False, precision="float32"
    )
    assert runs[299].models == {"regular s0": "crossentropy-0-299"}
    assert runs[299].missing == ["article s0"]
    assert runs[96].models == {} and runs[96].missing == ["regular s0", "article s0"]
    assert trained == [(299, "crossentropy", 0)]

    trained.clear()
    runs = res.gather_sized_runs(laptop, losses, ["article s1"], train_missing=True)
    assert trained == [(96, "article", 1), (299, "article", 1)]
    assert all(not r.missing for r in runs.values())


def test_true_class_maps_are_each_models_grad_cam_of_the_true_class():
    models = {"regular s0": tiny_model(seed=0), "article s0": tiny_model(seed=3)}
    x, y = images(4), np.array([0, 1, 2, 1])
    maps = true_class_maps(models, x, y, ["act1", "act2"])
    assert set(maps) == set(models)
    for name, model in models.items():
        direct = grad_cam(model, x, ["act1", "act2"], class_index="true", labels=y,
                          upsample_maps=False)  # fmt: skip
        for layer in ("act1", "act2"):
            np.testing.assert_allclose(maps[name][layer], direct.map(layer), rtol=1e-5, atol=1e-7)
    assert maps["regular s0"]["act1"].shape == (4, 8, 8)  # unsampled: each layer its own grid
    assert maps["regular s0"]["act2"].shape == (4, 4, 4)


def test_the_explorer_grid_puts_each_images_sizes_in_consecutive_rows():
    from helpers.explorer import precompute
    from helpers.plots import explorer_grid

    names = ("airplanes", "watch", "Leopards")
    labels = np.array([0, 1, 2])
    grids = {}
    for size in (8, 16):
        pixels = np.round((images(3, size) + 3) * 40).clip(0, 255).astype(np.uint8)
        grids[f"{size} px"] = precompute(
            tiny_model(seed=0, size=size), tiny_model(seed=5, size=size), pixels, labels, names,
            layers=["act1", "act2"], preprocess=lambda p: np.asarray(p, np.float32) / 127.5 - 1,
        )  # fmt: skip
    fig = explorer_grid(grids, [0, 2], ["act1", "act2"])
    rows = [ax.yaxis.label.get_text() for ax in fig.axes if ax.yaxis.label.get_text()]
    assert rows == ["airplanes\n8 px", "airplanes\n16 px", "Leopards\n8 px", "Leopards\n16 px"]
    # per image and size: the image, then per model a label and 2 layers; one colour bar
    assert len(fig.axes) == 4 * (1 + 2 * (1 + 2)) + 1
    pictures = [ax for ax in fig.axes if ax.yaxis.label.get_text()]
    drawn = [ax.images[0].get_array().shape[0] for ax in pictures]
    assert drawn == [8, 16, 8, 16]  # each row keeps its own size's pixels
    assert len([t for ax in fig.axes for t in ax.texts]) == 2 * 4  # predictions, per model row


def test_stored_maps_are_read_per_size_and_a_missing_size_is_none(tmp_path):
    from helpers.map_store import save_model_maps

    maps = {"regular s0": {"block2_add": np.ones((3, 2, 2), np.float32)}}
    save_model_maps(tmp_path / "maps" / "laptop-image_size299", maps, [0, 1, 2], "a CPU")
    found = res.stored_maps_by_size(PROFILES["laptop"], tmp_path)
    assert list(found) == [96, 299] and found[96] is None  # laptop/ was never stored here
    assert list(found[299].maps) == ["regular s0"] and found[299].devices == {"regular s0": "a CPU"}
    save_model_maps(tmp_path / "maps" / "laptop", maps, [0, 1, 2], "another CPU")
    assert res.stored_maps_by_size(PROFILES["laptop"], tmp_path)[96].devices == {
        "regular s0": "another CPU"
    }


def test_the_size_sentence_gives_each_size_its_reading_or_what_is_missing():
    from test_across_k import synthetic_maps

    from helpers.across_k import compare_across_k, format_across_k

    small = synthetic_maps({"regular": 3, "article": 3}, {"article"}, seed=3)
    large = synthetic_maps({"regular": 1, "article": 2}, {"article"}, seed=4)
    results = compare_across_k({96: small, 299: large}, ["article"], n_boot=200)
    assert results[("article", 299)] is None  # one regular model: no control pair at all
    seeds = {96: {"regular": 3, "article": 3}, 299: {"regular": 1, "article": 2}}
    assert res.size_sentence(results, "article", seeds) == (
        "The article loss, by input size: at 96 px it moves the maps away from a regular "
        "model's (below the control at 6 of 6 stages; 3 + 3 seeds); at 299 px it is not "
        "measured yet (1 regular and 2 article models stored; 3 of each are needed)."
    )
    table = format_across_k(results, key="px")
    one = {96: seeds[96], 299: {"regular": 0, "article": 1}}
    assert res.size_sentence(results, "article", one).endswith("(0 regular and 1 article model "
                                                              "stored; 3 of each are needed).")  # fmt: skip
    assert table.splitlines()[0].startswith("loss      px") and "299  " in table
    assert "not stored yet" in table.splitlines()[2]


def _store(names, size, *, predictions=None, indices=(0, 1, 2, 3), seed=0):
    from helpers.map_store import StoredMaps

    rng = np.random.default_rng(seed)
    maps = {n: {"block2_add": rng.random((len(indices), size, size), np.float32)} for n in names}
    labels = np.array([0, 1, 2, 0])
    return StoredMaps(maps, np.asarray(indices), dict.fromkeys(names, "a CPU"), labels, "",
                      predictions=predictions or {})  # fmt: skip


def test_same_pairs_use_only_the_seeds_stored_at_every_size_and_each_sizes_own_maps():
    from helpers.comparisons import agreement_over_pairs

    small = _store(["regular s0", "regular s1", "regular s2", "article s0", "article s1"], 3)
    large = _store(
        ["regular s0", "regular s1", "article s0", "article s1", "article s2"], 5, seed=1
    )
    found = res.same_pairs_by_size({96: small, 299: large})
    assert found.seeds == (0, 1) and found.design == comparison_design((0, 1), "article")
    assert found.no_predictions == [96, 299]  # neither store kept predictions: no "both right"
    assert {label for _, label in found.per_image} == set(found.design)
    for size, stored in ((96, small), (299, large)):
        for label, pairs in found.design.items():
            expected = agreement_over_pairs(stored.maps, pairs)["block2_add"]["spearman"]
            got = found.per_image[size, label]["block2_add"]["spearman"]
            np.testing.assert_array_equal(got, expected)


def test_both_right_keeps_per_image_only_the_pairs_whose_models_are_both_right():
    from helpers.comparisons import agreement_over_pairs

    names = ["regular s0", "regular s1", "article s0", "article s1"]
    right = np.array([0, 1, 2, 0])
    wrong_on_0 = np.array([1, 1, 2, 0])  # article s1 misses image 0
    predictions = {n: right for n in names} | {"article s1": wrong_on_0}
    small = _store(names, 3)
    large = _store(names, 5, predictions=predictions, seed=1)
    found = res.same_pairs_by_size({96: small, 299: large})
    assert (
        found.no_predictions == [96]
        and (96, "regular vs article, both right") not in found.per_image
    )
    both = found.per_image[299, "regular vs article, both right"]["block2_add"]["spearman"]
    every = found.per_image[299, "regular vs article"]["block2_add"]["spearman"]
    only = agreement_over_pairs(large.maps, [("regular s1", "article s0")])  # image 0's pair
    assert both[0] == pytest.approx(only["block2_add"]["spearman"][0])
    np.testing.assert_allclose(both[1:], every[1:])  # elsewhere every pair counts


def test_same_pairs_wait_for_two_shared_seeds_and_refuse_different_images():
    one_seed = _store(["regular s0", "article s0", "regular s1"], 3)
    two_seeds = _store(["regular s0", "regular s1", "article s0", "article s1"], 5)
    assert res.same_pairs_by_size({96: one_seed, 299: two_seeds}).design == {}
    assert res.same_pairs_by_size({96: None, 299: two_seeds}).per_image == {}
    moved = _store(
        ["regular s0", "regular s1", "article s0", "article s1"], 3, indices=(0, 1, 2, 5)
    )
    with pytest.raises(ValueError, match="different test images"):
        res.same_pairs_by_size({96: moved, 299: two_seeds})
