"""The smoke profile runs TensorFlow without its graph optimizer; the book's profiles keep it."""

import os
import subprocess
import sys

import pytest

tf = pytest.importorskip("tensorflow")

import helpers  # noqa: E402


def optimizer_off() -> bool:
    return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer"))


def test_pytest_runs_at_smoke_so_importing_helpers_turned_it_off():
    assert os.environ["BOOK_PROFILE"] == "smoke"  # the root conftest's, inherited by kernels
    assert optimizer_off()


@pytest.mark.parametrize("profile", ["laptop", "paper"])
def test_other_profiles_leave_it_alone(profile):
    assert helpers.skip_graph_optimizer(profile) is False


def test_a_run_without_tensorflow_is_left_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as the JAX-only tests block it
    assert helpers.skip_graph_optimizer("smoke") is False
    monkeypatch.undo()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert helpers.skip_graph_optimizer("smoke") is False


def test_a_laptop_chapter_keeps_the_optimizer_and_a_smoke_one_turns_it_off():
    code = (
        "import tensorflow as tf\n"
        "from helpers.manifest import start_run\n"
        "def off(): return bool(tf.config.optimizer.get_experimental_options()"
        ".get('disable_meta_optimizer'))\n"
        "start_run('x', profile='laptop'); laptop = off()\n"
        "start_run('x', profile='smoke'); print('RESULT', laptop, off())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "BOOK_PROFILE"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "RESULT False True"
