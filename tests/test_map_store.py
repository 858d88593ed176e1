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
    save_maps,
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


def test_a_stored_file_is_read_and_one_of_other_images_refused(fake_runs, tmp_path):
    exp, profile = fake_experiment(), fake_profile()
    stored, source = agreement_maps(exp, profile, directory=tmp_path)
    assert source == "computed" and len(fake_runs) == 6
    path = stored_maps_path("smoke", tmp_path)
    path.parent.mkdir()
    save_maps(path, stored.maps, stored.image_indices, stored.devices, accuracies=stored.accuracies)
    again, source = agreement_maps(exp, profile, directory=tmp_path)
    assert source == "stored" and len(fake_runs) == 6  # nothing trained the second time
    assert again.accuracies == pytest.approx(stored.accuracies)
    with pytest.raises(ValueError, match="other test images"):
        agreement_maps(exp, fake_profile(cam_images=3), directory=tmp_path)
    kinds = {"regular": "crossentropy", "article": "article"}
    only, _ = agreement_maps(exp, profile, kinds, directory=tmp_path)  # the file holds forward too
    assert {name.split()[0] for name in stored.maps} == {"regular", "article", "forward"}
    assert list(only.maps) == [m for m in stored.maps if not m.startswith("forward")]
    assert set(only.devices) == set(only.accuracies) == set(only.maps)


def test_other_classes_are_stored_apart_and_other_losses_named_by_loss(fake_runs, tmp_path):
    four = ("airplanes", "watch", "Leopards", "Motorbikes")
    assert stored_maps_path("laptop", tmp_path).name == "laptop.npz"
    assert stored_maps_path("laptop", tmp_path, DEFAULT_CLASSES).name == "laptop.npz"
    path = stored_maps_path("laptop", tmp_path, four)
    assert path.name == "laptop-airplanes-watch-leopards-motorbikes.npz"
    three = compute_agreement_maps(fake_experiment(), fake_profile(), (0, 1))
    path.parent.mkdir()
    save_maps(stored_maps_path("smoke", tmp_path), three.maps, three.image_indices, "cpu")
    kinds = {"regular": "crossentropy", "scl_exp": "scl_exp"}
    stored, source = agreement_maps(
        fake_experiment(8, four), fake_profile(), kinds, directory=tmp_path
    )
    assert source == "computed" and len(stored.image_indices) == 8  # not the three classes' file
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
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "save_maps", ROOT / "scripts" / "save_agreement_maps.py"
    )
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
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
    assert path.name == "laptop-image_size299.npz"
    four = ("airplanes", "watch", "Leopards", "Motorbikes")
    assert stored_maps_path("laptop", tmp_path, four, overrides="image_size299").name == (
        "laptop-image_size299-airplanes-watch-leopards-motorbikes.npz"
    )
    stored = compute_agreement_maps(fake_experiment(), fake_profile(), (0, 1))
    path.parent.mkdir()
    save_maps(path, stored.maps, stored.image_indices, stored.devices, accuracies=stored.accuracies)
    profile = SimpleNamespace(**vars(fake_profile()), extra=at_299.extra)
    profile.name = "laptop"
    again, source = agreement_maps(fake_experiment(), profile, directory=tmp_path)
    assert source == "stored" and list(again.maps) == list(stored.maps)
    plain = SimpleNamespace(**vars(fake_profile()), extra={})
    plain.name = "laptop"
    _, source = agreement_maps(fake_experiment(), plain, directory=tmp_path)
    assert source == "computed"  # the 96-px profile never reads the 299-px file


def test_the_script_refuses_an_unknown_profile_field():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "save_agreement_maps.py"), "--set", "colour=1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Cannot override profile field(s) 'colour'" in out.stderr
