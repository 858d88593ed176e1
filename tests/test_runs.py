"""Run specs, their results keys, queue files and the time estimate (helpers.runs)."""

from pathlib import Path

import pytest

from helpers.data import DEFAULT_CLASSES
from helpers.profiles import PROFILES
from helpers.runs import RunSpec, estimate_seconds, grid, parse_run, parse_runs

LAPTOP = PROFILES["laptop"]
FOUR = ("airplanes", "watch", "Leopards", "Motorbikes")


def test_the_books_own_runs_keep_their_keys():
    assert RunSpec("article", 0).key(LAPTOP, "float32") == "article/seed0"
    assert grid(["article", "crossentropy"], [0, 1])[1].key(LAPTOP, "float32") == "article/seed1"


def test_every_non_default_setting_is_part_of_the_key():
    spec = RunSpec("article", 2, FOUR, "mixed_bfloat16", {"image_size": "160"})
    key = spec.key(LAPTOP, "mixed_bfloat16")
    assert key == "article/seed2/airplanes-watch-leopards-motorbikes/image_size160/mixed_bfloat16"
    # An override that equals the profile's own value is no variant.
    assert RunSpec("nn", 0, overrides={"patience": 5}).key(LAPTOP, "float32") == "nn/seed0"
    assert spec.profile(LAPTOP).image_size == 160


def test_parse_runs_reads_a_queue_file():
    specs = parse_runs(
        """
        # longest first
        loss=article seed=0 image_size=299   # the original size
        loss=crossentropy seed=1 classes=airplanes,watch,Leopards,Motorbikes precision=float32

        loss=forward seed=2 learning_rate=1e-4 patience=15
        """
    )
    assert [s.loss for s in specs] == ["article", "crossentropy", "forward"]
    assert specs[0].overrides == {"image_size": "299"} and specs[0].classes == DEFAULT_CLASSES
    assert specs[1].classes == FOUR and specs[1].precision == "float32"
    assert specs[2].profile(LAPTOP).learning_rate == 1e-4
    assert "learning_rate=1e-4" in specs[2].describe()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("seed=0", "lacks loss"),
        ("loss=article", "lacks seed"),
        ("loss=article seed=zero", "seed must be an integer"),
        ("loss=article seed=0 299", "FIELD=VALUE"),
    ],
)
def test_parse_run_rejects_malformed_lines(line, message):
    with pytest.raises(ValueError, match=message):
        parse_run(line)


def test_estimate_scales_with_pixels():
    assert estimate_seconds([], [96]) is None
    assert estimate_seconds([(96, 600.0)], [96, 96]) == pytest.approx(1200.0)
    assert estimate_seconds([(96, 600.0)], [192]) == pytest.approx(2400.0)


def test_every_committed_queue_file_parses_into_distinct_runs():
    files = sorted((Path(__file__).resolve().parents[1] / "scripts" / "runs").glob("*.txt"))
    assert files, "the run queues of the book live in scripts/runs"
    for path in files:
        specs = parse_runs(path.read_text())
        keys = [spec.key(PROFILES["laptop"], "float32") for spec in specs]
        assert specs and len(set(keys)) == len(keys), f"{path.name} repeats a run"
        for spec in specs:
            spec.profile(PROFILES["laptop"])  # every override is a valid profile field


def test_summary_key_replaces_only_the_seed_part():
    from helpers.runs import summary_key

    assert summary_key("article/seed1/image_size160", 1) == "article/summary/image_size160"
    assert summary_key("article/seed10", 10) == "article/summary"
    assert summary_key("nn/seed1/classes-a-b/mixed_bfloat16", 1) == (
        "nn/summary/classes-a-b/mixed_bfloat16"
    )
    with pytest.raises(ValueError, match="no part 'seed1'"):
        summary_key("article/seed10", 1)  # not a prefix match
