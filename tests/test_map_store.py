"""The agreement maps chapter 5 reads: stored per profile, or computed from the profile's seeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import comparisons, experiment, gradcam
from helpers.data import DEFAULT_CLASSES
from helpers.map_store import (
    agreement_maps,
    compute_agreement_maps,
    load_maps,
    maps_tag,
    model_file,
    save_maps,
    save_model_maps,
    stored_maps_path,
)

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["block2_add", "block14_sepconv2_act"]


def fake_experiment(n: int = 6, classes: tuple[str, ...] = DEFAULT_CLASSES) -> SimpleNamespace:
    y = np.arange(n) % len(classes)
    return SimpleNamespace(
        dataset=SimpleNamespace(
            y_test=y, x_test=np.zeros((n, 8, 8, 3), np.uint8), class_names=classes
        )
    )


def fake_profile(cam_images: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(name="smoke", cam_images=cam_images, seeds=(0, 1))


@pytest.fixture
def fake_runs(monkeypatch):
    """Runs of every kind for seeds 0 and 1 only; each map says which model drew it."""
    trained = []

    def train_run(exp, loss, seed, profile, verbose=True):
        trained.append((loss, seed))
        return SimpleNamespace(model=(loss, seed))

    def true_class_maps(models, x, y, layers):
        ((name, (loss, seed)),) = models.items()
        value = {"crossentropy": 1, "article": 2, "forward": 3, "scl_exp": 4}[loss] * 10 + seed
        return {name: {layer: np.full((len(x), 2, 2), float(value)) for layer in layers}}

    monkeypatch.setattr(experiment, "train_run", train_run)
    monkeypatch.setattr(experiment, "is_trained", lambda exp, loss, seed, profile: seed < 2)

    def score_run(exp, model):  # predicts class (image + seed) % 3
        n = len(exp.dataset.y_test)
        probabilities = np.eye(3)[(np.arange(n) + model[1]) % 3]
        return {"true_accuracy": 0.5 + model[1] / 10, "probabilities": probabilities}

    monkeypatch.setattr(experiment, "score_run", score_run)
    monkeypatch.setattr(comparisons, "true_class_maps", true_class_maps)
    monkeypatch.setattr(gradcam, "residual_stages", lambda model: LAYERS)
    return trained


def test_computed_maps_name_each_model_by_kind_and_seed(fake_runs):
    stored = compute_agreement_maps(fake_experiment(), fake_profile(), (0, 1))
    assert list(stored.maps) == [
        f"{k} s{s}" for k in ("regular", "article", "forward") for s in (0, 1)
    ]
    assert stored.maps["article s1"]["block2_add"][0, 0, 0] == 21
    assert stored.accuracies["forward s1"] == pytest.approx(0.6)
    assert list(stored.image_indices) == list(range(6))
    assert list(stored.predictions["article s1"]) == [1, 2, 0, 1, 2, 0]


def test_predictions_are_stored_on_the_maps_images_for_the_models_that_have_them(
    fake_runs, tmp_path
):
    stored = compute_agreement_maps(fake_experiment(9), fake_profile(cam_images=4), (0, 1))
    assert list(stored.image_indices) == [0, 1, 2, 3]  # of the 9 test images
    assert {len(p) for p in stored.predictions.values()} == {4}
    assert list(stored.predictions["forward s1"]) == [1, 2, 0, 1]
    some = {m: stored.predictions[m] for m in ("regular s0", "article s1")}  # a pooled file
    path = save_maps(tmp_path / "m", stored.maps, stored.image_indices, "cpu", predictions=some)
    again = load_maps(path)
    assert list(again.predictions) == ["regular s0", "article s1"]
    assert list(again.predictions["article s1"]) == [1, 2, 0, 1]
    without = save_maps(tmp_path / "n", stored.maps, stored.image_indices, "cpu")
    assert load_maps(without).predictions == {}
    with pytest.raises(ValueError, match="one class per image"):
        save_maps(tmp_path / "o", stored.maps, stored.image_indices, "cpu",
                  predictions={"regular s0": [0, 1]})  # fmt: skip
    with pytest.raises(ValueError, match="without maps"):
        save_maps(tmp_path / "o", stored.maps, stored.image_indices, "cpu",
                  predictions={"regular s7": [0] * 4})  # fmt: skip


def test_without_training_only_the_runs_on_disk_are_used(fake_runs):
    stored = compute_agreement_maps(fake_experiment(), fake_profile(), (0, 1, 2, 3), train=False)
    assert {int(m[-1]) for m in stored.maps} == {0, 1}
    with pytest.raises(FileNotFoundError, match="no trained model"):
        compute_agreement_maps(fake_experiment(), fake_profile(), (5,), train=False)
    done = set(stored.maps) - {"forward s1"}
    rest = compute_agreement_maps(fake_experiment(), fake_profile(), (0, 1), train=False, skip=done)
    assert list(rest.maps) == list(rest.accuracies) == ["forward s1"]  # only the one not stored
    none = compute_agreement_maps(fake_experiment(), fake_profile(), (0,), train=False, skip=done)
    assert none.maps == {}  # everything is stored: nothing to compute, and no error


def test_a_stored_folder_is_read_and_one_of_other_images_refused(fake_runs, tmp_path):
    exp, profile = fake_experiment(), fake_profile()
    stored, source = agreement_maps(exp, profile, directory=tmp_path)
    assert source == "computed" and len(fake_runs) == 6
    path = stored_maps_path("smoke", tmp_path)
    save_model_maps(
        path, stored.maps, stored.image_indices, stored.devices, accuracies=stored.accuracies
    )
    again, source = agreement_maps(exp, profile, directory=tmp_path)
    assert source == "stored" and len(fake_runs) == 6  # nothing trained the second time
    assert again.accuracies == pytest.approx(stored.accuracies)
    with pytest.raises(ValueError, match="other test images"):
        agreement_maps(exp, fake_profile(cam_images=3), directory=tmp_path)
    kinds = {"regular": "crossentropy", "article": "article"}
    only, _ = agreement_maps(exp, profile, kinds, directory=tmp_path)  # forward is stored too
    assert {name.split()[0] for name in stored.maps} == {"regular", "article", "forward"}
    # a stored folder comes in the order of kind and seed
    assert list(only.maps) == ["article s0", "article s1", "regular s0", "regular s1"]
    assert set(only.devices) == set(only.accuracies) == set(only.maps)


def test_other_classes_are_stored_apart_and_other_losses_named_by_loss(fake_runs, tmp_path):
    four = ("airplanes", "watch", "Leopards", "Motorbikes")
    assert stored_maps_path("laptop", tmp_path).name == "laptop"
    assert stored_maps_path("laptop", tmp_path, DEFAULT_CLASSES).name == "laptop"
    path = stored_maps_path("laptop", tmp_path, four)
    assert path.name == "laptop-airplanes-watch-leopards-motorbikes"
    three = compute_agreement_maps(fake_experiment(), fake_profile(), (0, 1))
    save_model_maps(stored_maps_path("smoke", tmp_path), three.maps, three.image_indices, "cpu")
    kinds = {"regular": "crossentropy", "scl_exp": "scl_exp"}
    stored, source = agreement_maps(
        fake_experiment(8, four), fake_profile(), kinds, directory=tmp_path
    )
    assert source == "computed" and len(stored.image_indices) == 8  # not the three classes' folder
    assert list(stored.maps) == ["regular s0", "regular s1", "scl_exp s0", "scl_exp s1"]
    assert stored.maps["scl_exp s1"]["block2_add"][0, 0, 0] == 41


def test_save_maps_needs_an_accuracy_for_every_model(tmp_path):
    maps = {"regular s0": {"l": np.ones((2, 2, 2))}, "regular s1": {"l": np.ones((2, 2, 2))}}
    with pytest.raises(ValueError, match="accuracies must name every model"):
        save_maps(tmp_path / "m", maps, np.arange(2), "cpu", accuracies={"regular s0": 0.9})
    assert load_maps(save_maps(tmp_path / "m", maps, np.arange(2), "cpu")).accuracies == {}


def test_the_script_documents_itself():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "save_agreement_maps.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--replace" in out.stdout and "Store the Grad-CAM maps" in out.stdout


def test_the_script_recognises_a_stored_model_as_the_same_one():
    script = load_script()
    rng = np.random.default_rng(0)
    maps = {"l": rng.random((4, 3, 3)).astype(np.float32)}
    rounded = {"l": maps["l"].astype(np.float16).astype(np.float32)}
    assert script.same_maps(maps, rounded)  # float16 storage is still the same model
    assert not script.same_maps(maps, {"l": rng.random((4, 3, 3)).astype(np.float32)})


def test_runs_with_overridden_settings_keep_their_maps_apart(fake_runs, tmp_path):
    from helpers.profiles import get_profile, override_profile

    laptop = get_profile("laptop")
    at_299 = override_profile(laptop, {"image_size": "299"})
    assert maps_tag(laptop) == "" and maps_tag(at_299) == "image_size299"
    assert maps_tag(override_profile(laptop, {"image_size": "96"})) == ""  # the profile's own
    assert maps_tag(override_profile(laptop, {"cam_images": "8"})) == ""  # same models
    path = stored_maps_path("laptop", tmp_path, overrides=maps_tag(at_299))
    assert path.name == "laptop-image_size299"
    four = ("airplanes", "watch", "Leopards", "Motorbikes")
    assert stored_maps_path("laptop", tmp_path, four, overrides="image_size299").name == (
        "laptop-image_size299-airplanes-watch-leopards-motorbikes"
    )
    stored = compute_agreement_maps(fake_experiment(), fake_profile(), (0, 1))
    save_model_maps(
        path, stored.maps, stored.image_indices, stored.devices, accuracies=stored.accuracies
    )
    profile = SimpleNamespace(**vars(fake_profile()), extra=at_299.extra)
    profile.name = "laptop"
    again, source = agreement_maps(fake_experiment(), profile, directory=tmp_path)
    assert source == "stored" and set(again.maps) == set(stored.maps)
    plain = SimpleNamespace(**vars(fake_profile()), extra={})
    plain.name = "laptop"
    _, source = agreement_maps(fake_experiment(), plain, directory=tmp_path)
    assert source == "computed"  # the 96-px profile never reads the 299-px folder


def test_the_script_refuses_an_unknown_profile_field():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "save_agreement_maps.py"), "--set", "colour=1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Cannot override profile field(s) 'colour'" in out.stderr


def test_a_folder_holds_a_file_per_model_and_pools_them_in_kind_and_seed_order(tmp_path):
    rng = np.random.default_rng(1)
    maps = {m: {"l": rng.random((3, 2, 2))} for m in ("regular s1", "article s0", "regular s0")}
    folder = tmp_path / "laptop"
    written = save_model_maps(
        folder, maps, [4, 5, 6], {"regular s1": "a", "article s0": "b", "regular s0": "c"},
        accuracies={"regular s1": 0.9, "article s0": 0.8, "regular s0": 0.7},
        predictions={"article s0": [0, 1, 2]}, labels=[0, 1, 2], note="n",
    )  # fmt: skip
    assert written == [model_file(folder, m) for m in maps]
    assert sorted(f.name for f in folder.iterdir()) == [
        "article-s0.npz", "regular-s0.npz", "regular-s1.npz"
    ]  # fmt: skip
    pooled = load_maps(folder)
    assert list(pooled.maps) == ["article s0", "regular s0", "regular s1"]
    assert pooled.devices == {"article s0": "b", "regular s0": "c", "regular s1": "a"}
    assert pooled.accuracies["regular s1"] == pytest.approx(0.9)
    assert list(pooled.predictions) == ["article s0"] and pooled.note == "n"
    assert np.allclose(pooled.maps["regular s1"]["l"], maps["regular s1"]["l"], rtol=1e-3)
    before = model_file(folder, "regular s0").read_bytes()
    save_model_maps(folder, {"forward s0": maps["regular s0"]}, [4, 5, 6], "d", labels=[0, 1, 2])
    assert model_file(folder, "regular s0").read_bytes() == before  # a new seed leaves it be
    assert list(load_maps(folder).maps)[1] == "forward s0"
    with pytest.raises(ValueError, match="must name every model"):
        save_model_maps(folder, maps, [4, 5, 6], "a", accuracies={"regular s1": 0.9})


def test_a_folder_of_other_images_or_no_files_is_refused_with_what_to_do(tmp_path):
    folder = tmp_path / "laptop"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no maps: store them"):
        load_maps(folder)
    maps = {"l": np.ones((2, 2, 2))}
    save_model_maps(folder, {"regular s0": maps}, [0, 1], "cpu")
    save_model_maps(folder, {"regular s1": maps}, [0, 2], "cpu")
    with pytest.raises(ValueError, match="other images or layers"):
        load_maps(folder)
    model_file(folder, "regular s1").unlink()
    save_model_maps(folder, {"regular s1": {"k": maps["l"]}}, [0, 1], "cpu")
    with pytest.raises(ValueError, match="other images or layers"):
        load_maps(folder)
    model_file(folder, "regular s1").unlink()
    save_maps(folder / "copy.npz", {"regular s0": maps}, [0, 1], "cpu")  # a copied file
    with pytest.raises(ValueError, match="a model is stored in two files"):
        load_maps(folder)


def test_an_interrupted_save_leaves_the_stored_file_as_it_was(tmp_path, monkeypatch):
    maps = {"regular s0": {"l": np.ones((2, 2, 2))}}
    path = save_maps(tmp_path / "m.npz", maps, [0, 1], "cpu")
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError, match="disk full"):
        save_maps(path, {"regular s0": {"l": np.zeros((2, 2, 2))}}, [0, 1], "cpu")
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "save_maps", ROOT / "scripts" / "save_agreement_maps.py"
    )
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_script_writes_only_the_models_not_stored_yet(tmp_path, monkeypatch, capsys):
    from helpers.map_store import StoredMaps

    script = load_script()
    rng = np.random.default_rng(2)
    here = {
        m: {"l": rng.random((3, 2, 2)).astype(np.float32)} for m in ("regular s0", "article s0")
    }

    def on_machine(names):
        return StoredMaps(
            {m: here[m] for m in names}, np.arange(3), dict.fromkeys(names, "x"), None, "",
            dict.fromkeys(names, 0.5), {m: np.zeros(3, np.int64) for m in names},
        )  # fmt: skip

    machine = on_machine(["regular s0"])
    monkeypatch.setattr(script, "prepare_experiment", lambda *a, **k: None)
    monkeypatch.setattr(script, "compute_agreement_maps", lambda *a, **k: machine)
    argv = ["--profile", "smoke", "--out", str(tmp_path / "maps"), "--device", "first CPU"]
    assert script.main(argv) == 0
    first = model_file(tmp_path / "maps", "regular s0").read_bytes()
    machine = on_machine(["regular s0", "article s0"])  # the same model, and a new one
    assert script.main([*argv[:-1], "second CPU"]) == 0
    assert model_file(tmp_path / "maps", "regular s0").read_bytes() == first
    assert load_maps(tmp_path / "maps").devices == {
        "article s0": "second CPU", "regular s0": "first CPU"
    }  # fmt: skip
    assert "2 models in" in capsys.readouterr().out
    here["regular s0"] = {
        "l": rng.random((3, 2, 2)).astype(np.float32)
    }  # another model of the same seed
    machine = on_machine(["regular s0"])
    with pytest.raises(SystemExit, match="stored already"):
        script.main(argv)
    assert script.main([*argv, "--replace"]) == 0
    assert load_maps(tmp_path / "maps").devices["regular s0"] == "first CPU"
    assert model_file(tmp_path / "maps", "regular s0").read_bytes() != first
    # --new-only computes only what is not stored: here nothing, and nothing is rewritten
    skipped = []

    def compute(*args, skip=(), **kwargs):
        skipped.extend(skip)
        return on_machine([m for m in ("regular s0", "article s0") if m not in skip])

    monkeypatch.setattr(script, "compute_agreement_maps", compute)
    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "maps").iterdir()}
    assert script.main([*argv, "--new-only"]) == 0
    assert sorted(skipped) == ["article s0", "regular s0"]
    assert stamps == {f: f.stat().st_mtime_ns for f in (tmp_path / "maps").iterdir()}
    with pytest.raises(SystemExit):  # argparse: the two flags contradict each other
        script.main([*argv, "--new-only", "--replace"])
