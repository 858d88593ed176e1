"""Helpers for the book *What does a model trained only on wrong labels look at?*

Importing the package imports the Keras backend once with the process's stderr silenced:
TensorFlow's C++ layer writes start-up lines (oneDNN, CUDA probing) straight to file
descriptor 2 before any Python logging setting can stop it, and those lines would land in
every notebook's stored outputs. Python exceptions are unaffected: they are not written
through file descriptor 2 during the import.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"


def _import_backend_quietly() -> None:
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (some embedded interpreters)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices("GPU")  # the CUDA probe logs too
            # Python-side warnings (e.g. tf.function retracing advice) are for TF developers,
            # not readers: keep them out of the stored notebooks.
            tensorflow.get_logger().setLevel("ERROR")
        except ImportError:
            pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def skip_graph_optimizer(profile: str | None = None) -> bool:
    """At the ``smoke`` profile, turn TensorFlow's graph optimizer (Grappler) off; say if it did.

    A smoke model runs each of its traced graphs only a few times, and optimizing Xception's
    training graph costs more than it saves: 29 s against 34 s per smoke model on two AVX2
    cores (median of two: ``benchmarks/bench_smoke_model.py --repeats 2``, then the same with
    ``--grappler``). CI trains a few dozen of them.
    The numbers a smoke run prints are not the book's, so nothing stored depends on it;
    ``laptop`` and ``paper`` runs keep the optimizer. ``profile``: the profile's name
    (``None``: ``$BOOK_PROFILE``, which is how pytest and the chapters it runs get here).
    No-op on other backends than TensorFlow.
    """
    if (profile or os.environ.get("BOOK_PROFILE")) != "smoke":
        return False
    tensorflow = sys.modules.get("tensorflow")  # None where it is absent or blocked (JAX runs)
    if tensorflow is None or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return False
    tensorflow.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    return True


_import_backend_quietly()
skip_graph_optimizer()
