"""The run manifest every chapter prints near its top, and the chapter's wall clock."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from helpers.profiles import Profile, get_profile, gpu_available

PACKAGES = ("keras", "tensorflow", "jax", "numpy", "opencv-python-headless", "scikit-image")


def in_colab() -> bool:
    """Whether this kernel runs in Google Colab."""
    return "google.colab" in sys.modules


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (packages that are absent are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_name() -> str:
    """A short description of the device the Keras backend computes on."""
    if gpu_available():
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        try:
            if backend == "jax":
                import jax

                return f"GPU ({jax.devices()[0].device_kind})"
            import tensorflow as tf

            gpu = tf.config.list_physical_devices("GPU")[0]
            details = tf.config.experimental.get_device_details(gpu)
            return f"GPU ({details.get('device_name', gpu.name)})"
        except Exception:
            return "GPU"
    from helpers.precision import cpu_flags  # here: it imports Keras, which a manifest need not

    parts = [cpu_model(), platform.machine(), vector_extension(cpu_flags())]
    return f"CPU ({', '.join(p for p in parts if p)}, {os.cpu_count()} cores)"


def vector_extension(flags: Iterable[str]) -> str:
    """The widest vector extension the CPU offers: ``AVX512``, ``AVX2``, ``NEON`` or ``""``.

    Part of the device line: the math kernels (oneDNN) choose their float32 code by it, so two
    CPUs of one model name, one with AVX-512 and one with AVX2 only, train different models.
    """
    found = {flag.lower() for flag in flags}
    if "avx512f" in found:
        return "AVX512"
    if "avx2" in found:
        return "AVX2"
    if found & {"asimd", "neon"}:
        return "NEON"
    return ""


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The processor's model name, e.g. ``AMD EPYC`` (``""`` where the system does not say).

    Part of every run's device line: float32 training on two CPUs (whose math kernels round
    differently) ends in different models, so runs from two machines are not one set.
    """
    path = Path(cpuinfo)
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                return " ".join(value.split())
    return platform.processor().strip()


@dataclass
class Run:
    """One execution of a chapter: its profile, its manifest and its wall clock."""

    chapter: str
    profile: Profile
    manifest: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the chapter started."""
        return time.perf_counter() - self.started

    def finish(self, record_result: bool = True) -> None:
        """Print the chapter's wall time and record it in the results store."""
        seconds = self.elapsed()
        if record_result:
            from helpers.results import record

            record(
                self.chapter,
                "wall_time_s",
                round(seconds, 1),
                profile=self.profile.name,
                wall_time_s=seconds,
            )
        print(
            f"Chapter {self.chapter!r} ran in {seconds / 60:.1f} min at the "
            f"{self.profile.name!r} profile."
        )


def run_manifest(profile: Profile) -> dict[str, Any]:
    """Profile, backend, device, precision (and why), package versions, the date (UTC)."""
    import keras

    from helpers.precision import resolve_precision

    return {
        "profile": profile.name,
        "image_size": profile.image_size,
        "backend": keras.backend.backend(),
        "device": device_name(),
        "precision": str(resolve_precision()),
        "python": platform.python_version(),
        "packages": package_versions(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "colab": in_colab(),
    }


def format_manifest(manifest: dict[str, Any]) -> str:
    """The manifest as a few aligned lines of text."""
    lines = []
    for key, val in manifest.items():
        if key == "packages":
            val = ", ".join(f"{k} {v}" for k, v in val.items())
        lines.append(f"{key:<11}{val}")
    return "\n".join(lines)


def start_run(chapter: str, profile: str | None = None) -> Run:
    """Start a chapter: choose the profile, check for a GPU, print the run manifest.

    At ``smoke`` it also turns TensorFlow's graph optimizer off
    (:func:`helpers.skip_graph_optimizer`).

    Parameters
    ----------
    chapter
        Short chapter key used in the results store (``"data"``, ``"regular"``, ...).
    profile
        Profile name; ``None`` uses ``$BOOK_PROFILE`` or the default.
    """
    from helpers import skip_graph_optimizer

    prof = get_profile(profile)
    skip_graph_optimizer(prof.name)  # smoke only: its few steps do not repay the optimizer
    manifest = run_manifest(prof)
    print(format_manifest(manifest))
    if in_colab() and not manifest["device"].startswith("GPU"):
        print(
            "No GPU visible: in Colab choose Runtime > Change runtime type > GPU, "
            "or set BOOK_PROFILE=laptop for a smaller CPU run."
        )
    return Run(chapter=chapter, profile=prof, manifest=manifest)
