"""Run-profile selection and the results store."""

import json
import subprocess
import sys
import textwrap

import pytest

from helpers import profiles, results
from helpers.profiles import PROFILES, get_profile
from helpers.results import load_results, record, results_path, value


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("BOOK_PROFILE", "laptop")
    assert get_profile().name == "laptop"
    assert get_profile().image_size == 96
    monkeypatch.setenv("BOOK_PROFILE", " Smoke ")
    assert get_profile().image_size == 71


def test_explicit_name_wins_over_environment(monkeypatch):
    monkeypatch.setenv("BOOK_PROFILE", "smoke")
    assert get_profile("paper").name == "paper"


def test_paper_profile_matches_the_original_study():
    paper = PROFILES["paper"]
    assert (paper.image_size, paper.batch_size, paper.learning_rate) == (299, 16, 1e-5)
    assert paper.amsgrad and paper.patience == 3 and paper.max_epochs == 1000


@pytest.mark.parametrize(("gpu", "expected"), [(True, "paper"), (False, "laptop")])
def test_default_depends_on_gpu(monkeypatch, gpu, expected):
    monkeypatch.delenv("BOOK_PROFILE", raising=False)
    monkeypatch.setattr(profiles, "gpu_available", lambda: gpu)
    assert get_profile().name == expected


def test_unknown_profile_lists_valid_names(monkeypatch):
    with pytest.raises(ValueError, match="Unknown run profile 'huge'.*smoke, laptop, paper"):
        get_profile("huge")
    monkeypatch.setenv("BOOK_PROFILE", "tiny")
    with pytest.raises(ValueError, match="'tiny'.*BOOK_PROFILE"):
        get_profile()


def test_record_writes_entry_with_metadata(tmp_path):
    entry = record("data", "n_total", 639, profile="smoke", backend="jax", seed=0,
                   wall_time_s=1.234, directory=tmp_path)  # fmt: skip
    assert entry["value"] == 639 and entry["backend"] == "jax" and entry["seed"] == 0
    assert entry["wall_time_s"] == 1.2 and entry["profile"] == "smoke"
    stored = json.loads((tmp_path / "smoke.json").read_text())
    assert stored == {"data": {"n_total": entry}}
    assert value("data", "n_total", "smoke", directory=tmp_path) == 639


def test_record_merges_and_replaces(tmp_path):
    record("data", "n_total", 1, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("data", "n_train", 511, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("regular", "accuracy", 0.9, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("data", "n_total", 639, profile="smoke", backend="tensorflow", directory=tmp_path)
    record("data", "n_total", 7, profile="laptop", backend="tensorflow", directory=tmp_path)
    data = load_results("smoke", tmp_path)
    assert sorted(data) == ["data", "regular"]
    assert {k: v["value"] for k, v in data["data"].items()} == {"n_total": 639, "n_train": 511}
    assert value("regular", "accuracy", "smoke", directory=tmp_path) == 0.9
    assert value("data", "n_total", "laptop", directory=tmp_path) == 7


def test_writers_at_once_keep_every_entry(tmp_path):
    # Parallel chapters record into one store; without the lock, one writer's read-change-
    # write drops what another wrote in between.
    script = textwrap.dedent(f"""
        import sys
        from helpers.results import record
        for i in range(40):
            record("ch" + sys.argv[1], f"k{{i}}", i, profile="smoke", backend="tensorflow",
                   directory={str(tmp_path)!r})
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script, str(w)]) for w in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0] * 4
    data = load_results("smoke", tmp_path)
    assert {ch: len(keys) for ch, keys in data.items()} == {f"ch{w}": 40 for w in range(4)}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_missing_results_give_defaults(tmp_path):
    assert load_results("paper", tmp_path) == {}
    assert value("data", "n_total", "paper", directory=tmp_path, default="n/a") == "n/a"


def test_results_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "elsewhere"))
    record("data", "n_test", 128, profile="smoke", backend="tensorflow")
    assert results_path("smoke") == tmp_path / "elsewhere" / "smoke.json"
    assert value("data", "n_test", "smoke") == 128


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    record("data", "n_total", 639, profile="smoke", backend="tensorflow", directory=tmp_path)
    before = (tmp_path / "smoke.json").read_bytes()

    def broken_dump(obj, f, **kw):
        f.write('{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr(results.json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        record("data", "n_total", 1, profile="smoke", backend="tensorflow", directory=tmp_path)
    assert (tmp_path / "smoke.json").read_bytes() == before
    left = [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"]  # the writers' lock stays
    assert left == ["smoke.json"]  # no temporary file left


# ------------------------------------------------------------------------ profile overrides


def test_override_profile_coerces_records_and_tags():
    from helpers.profiles import override_profile, override_tag, parse_overrides

    laptop = PROFILES["laptop"]
    arm = override_profile(laptop, parse_overrides(["learning_rate=1e-5", "patience=15"]))
    assert (arm.name, arm.learning_rate, arm.patience) == ("laptop", 1e-5, 15)
    assert arm.extra["overrides"] == {"learning_rate": 1e-5, "patience": 15}
    assert override_tag(arm) == "learning_rate1e-05-patience15"
    assert override_tag(arm, ["patience"]) == "patience15"
    assert override_tag(laptop) == ""
    # An override equal to the profile's own value changes nothing a run is named by.
    assert override_tag(override_profile(laptop, {"image_size": "96"})) == ""
    both = override_profile(arm, {"image_size": 160, "max_train_images": "none"})
    assert both.image_size == 160 and both.max_train_images is None
    assert both.extra["overrides"]["learning_rate"] == 1e-5  # earlier overrides kept
    assert override_profile(laptop, {"seeds": "0,1"}).seeds == (0, 1)
    assert override_profile(laptop, {"checkpoint": "false"}).checkpoint is False
    assert override_profile(laptop, {}) is laptop


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learnin_rate": "1e-4"}, "Cannot override.*'learnin_rate'.*learning_rate"),
        ({"name": "paper"}, "Cannot override.*'name'"),
        ({"patience": "soon"}, "'patience' cannot take the value 'soon'"),
        ({"amsgrad": "maybe"}, "'amsgrad' cannot take"),
    ],
)
def test_override_profile_rejects_bad_fields_and_values(overrides, message):
    from helpers.profiles import override_profile

    with pytest.raises(ValueError, match=message):
        override_profile(PROFILES["laptop"], overrides)


def test_parse_overrides_needs_field_equals_value():
    from helpers.profiles import parse_overrides

    assert parse_overrides([" patience = 3 "]) == {"patience": "3"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["patience"])


def test_the_original_recipe_fields_override_and_stay_out_of_existing_runs_names():
    from helpers.profiles import override_profile, override_tag
    from helpers.runs import parse_run
    from helpers.training import TRAINING_FIELDS, _training_fields, run_directory

    laptop = PROFILES["laptop"]
    assert laptop.recalibrate_bn is True and laptop.lr_decay == 0.0
    recipe = override_profile(laptop, {"lr_decay": "1e-6", "recalibrate_bn": "false"})
    assert recipe.lr_decay == 1e-6 and isinstance(recipe.lr_decay, float)
    assert recipe.recalibrate_bn is False
    assert override_tag(recipe, TRAINING_FIELDS) == "lr_decay1e-06-recalibrate_bnFalse"
    assert run_directory("complementary-article", recipe, 0).name == (
        "complementary-article-lr_decay1e-06-recalibrate_bnFalse-seed0"
    )
    # At their defaults the new fields change no run's name, key or saved identity.
    same = override_profile(laptop, {"lr_decay": "0", "recalibrate_bn": "true"})
    assert override_tag(same) == "" and run_directory("regular", same, 0).name == "regular-seed0"
    assert parse_run("loss=article seed=1 lr_decay=0.0").key(laptop, "float32") == "article/seed1"
    saved = _training_fields(laptop.as_dict())
    assert "recalibrate_bn" not in saved and "lr_decay" not in saved
    assert _training_fields(recipe.as_dict()) == {
        **saved, "recalibrate_bn": False, "lr_decay": 1e-6
    }  # fmt: skip
    with pytest.raises(ValueError, match="'lr_decay' cannot take the value 'fast'"):
        override_profile(laptop, {"lr_decay": "fast"})


# ------------------------------------------------------------------------------ precision


def test_precision_from_argument_environment_and_auto(monkeypatch):
    from helpers import precision

    monkeypatch.setenv("BOOK_PRECISION", " Mixed_BFloat16 ")
    assert precision.resolve_precision().policy == "mixed_bfloat16"
    assert "BOOK_PRECISION" in precision.resolve_precision().reason
    assert precision.resolve_precision("float32").policy == "float32"
    monkeypatch.setenv("BOOK_PRECISION", "auto")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    monkeypatch.setattr(precision, "gpu_bf16", lambda: None)
    chosen = precision.resolve_precision()
    assert chosen.policy == "mixed_bfloat16" and "amx_bf16" in chosen.reason
    assert chosen.short == "bf16" and str(chosen).startswith("mixed_bfloat16 (auto")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert precision.resolve_precision().policy == "float32"
    monkeypatch.setattr(precision, "gpu_bf16", lambda: "GPU H200 (compute capability 9.0)")
    assert "H200" in precision.resolve_precision().reason


def test_auto_precision_reads_the_cpu_flags():
    from helpers.precision import auto_precision, cpu_bf16_flags, cpu_flags

    assert cpu_bf16_flags(frozenset({"avx512_bf16", "avx512f"})) == ["avx512_bf16"]
    assert auto_precision(frozenset({"avx512f"}), gpu=None).policy == "float32"
    assert auto_precision(frozenset({"amx_bf16"}), gpu=None).policy == "mixed_bfloat16"
    assert isinstance(cpu_flags(), frozenset) and cpu_flags()  # this machine has some flags


@pytest.mark.parametrize(
    ("flags", "policy"),
    [
        # AMD EPYC with AVX512-BF16, no AMX: 16.1 against 16.7 img/s, so float32.
        ({"avx2", "avx512f", "avx512_bf16"}, "float32"),
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
        ({"avx2", "amx_bf16"}, "mixed_bfloat16"),
        ({"avx2", "fma"}, "float32"),
    ],
)
def test_auto_precision_takes_bfloat16_on_a_cpu_only_with_amx(flags, policy):
    from helpers.precision import auto_precision

    chosen = auto_precision(frozenset(flags), gpu=None)
    assert chosen.policy == policy
    if "avx512_bf16" in flags and policy == "float32":
        assert "avx512_bf16 but no AMX" in chosen.reason


def test_unknown_precision_lists_valid_values():
    from helpers.precision import resolve_precision

    with pytest.raises(ValueError, match="Unknown precision 'half'.*auto, float32, mixed_bfloat16"):
        resolve_precision("half")


def test_manifest_prints_the_precision_and_why(monkeypatch):
    from helpers.manifest import format_manifest, run_manifest

    monkeypatch.setenv("BOOK_PRECISION", "float32")
    text = format_manifest(run_manifest(PROFILES["smoke"]))
    assert "precision  float32 (set by BOOK_PRECISION)" in text


def test_the_device_line_names_the_cpu_model(tmp_path):
    from helpers.manifest import cpu_model

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD  EPYC 7B13\nflags\t\t: avx2\n")
    assert cpu_model(str(info)) == "AMD EPYC 7B13"
    assert isinstance(cpu_model(str(tmp_path / "missing")), str)


def test_the_device_line_names_the_vector_extension(monkeypatch):
    import helpers.precision
    from helpers.manifest import device_name, vector_extension

    assert vector_extension(["fpu", "AVX2", "avx512f"]) == "AVX512"
    assert vector_extension(["sse4_2", "avx2"]) == "AVX2"
    assert vector_extension(["fp", "asimd"]) == "NEON"
    assert vector_extension([]) == ""
    monkeypatch.setattr("helpers.manifest.gpu_available", lambda: False)
    monkeypatch.setattr(helpers.precision, "cpu_flags", lambda: frozenset({"avx2"}))
    assert ", AVX2, " in device_name()
    monkeypatch.setattr(helpers.precision, "cpu_flags", lambda: frozenset())
    assert "AVX" not in device_name() and device_name().endswith(" cores)")


def test_runs_by_device_counts_runs_not_summaries(tmp_path):
    from helpers.results import record, runs_by_device

    def run(key, device, precision, date):
        record(
            "complementary_sweep",
            key,
            {"precision": precision, "true_accuracy": 0.9} if precision else {"seeds": [0]},
            profile="laptop",
            directory=tmp_path,
            device=device,
        )

    run("article/seed0", "CPU A", "float32", "")
    run("article/seed1", "CPU A", "float32", "")
    run("article/seed2", "CPU B", "float32", "")
    run("article/seed3", "CPU B", "mixed_bfloat16", "")
    run("article/summary", "CPU A", None, "")
    run("article/summary/image_size160", "CPU A", None, "")
    rows = runs_by_device("laptop", tmp_path)
    assert [(r["device"], r["precision"], r["runs"]) for r in rows] == [
        ("CPU A", "float32", 2),
        ("CPU B", "float32", 1),
        ("CPU B", "mixed_bfloat16", 1),
    ]
    assert runs_by_device("laptop", tmp_path / "empty") == []
