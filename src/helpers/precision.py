"""Numeric precision of training: float32, or mixed bfloat16 where the hardware runs it natively.

Under Keras' ``mixed_bfloat16`` policy the convolutions compute in bfloat16 while every
variable stays float32. The book keeps everything that decides a number in float32:

- the ``logits`` and ``predictions`` layers (so losses and metrics see float32 logits; the
  complementary losses are computed in log-space on them);
- BatchNorm: Keras casts a bfloat16 input to float32 before taking its moments, and the
  moving statistics are float32 variables, so the precise-BN recalibration is float32 too;
- Grad-CAM: :func:`float32_model` gives a float32 twin of a bfloat16 model, with the same
  weights, for activations and gradients.

bfloat16 pays only where the processor has bfloat16 *matrix* units. ``auto`` reads the
hardware and chooses ``mixed_bfloat16`` on an NVIDIA GPU of compute capability 8.0 or newer
and on a CPU with AMX-BF16, and float32 everywhere else, measured with
``benchmarks/bench_precision.py`` (the book's Xception through ``fit``, batch 16, TF 2.21):

========================================  =====  ==========  ==========  ==========  ==========
CPU                                       size   fp32 train  bf16 train  fp32 infer  bf16 infer
========================================  =====  ==========  ==========  ==========  ==========
AMD EPYC, AVX512-BF16, no AMX             96     16.7        16.1        45.0        51.3
AMD EPYC, AVX512-BF16, no AMX             160    6.2         6.2         23.8        26.7
AMD EPYC, AVX2 only                       96     6.3         1.3         27.5        19.4
========================================  =====  ==========  ==========  ==========  ==========

(images per second). On an Intel Xeon with AMX-BF16 the same comparison gave 1.5-2.1x at
96 px and 1.7x at 299 px. With AVX512-BF16 alone training gains nothing, while the numbers a
run produces change (and a run's precision is part of its identity); without any bfloat16
arithmetic the oneDNN kernels emulate it and training is about five times *slower*.
:func:`cpu_bf16_flags` still reports AVX512-BF16, so a manifest says what the CPU has.
"""

from __future__ import annotations

import functools
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

ENV_VAR = "BOOK_PRECISION"
POLICIES = ("float32", "mixed_bfloat16")
CHOICES = ("auto", *POLICIES)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # native bfloat16 matrix / vector arithmetic
# Only the matrix units make bfloat16 training faster than float32 (module docstring).
BF16_PAYING_CPU_FLAGS = ("amx_bf16",)
BF16_GPU_CAPABILITY = (8, 0)  # NVIDIA Ampere and newer
SHORT = {"float32": "fp32", "mixed_bfloat16": "bf16"}


@dataclass(frozen=True)
class Precision:
    """The precision in force and why.

    Attributes
    ----------
    policy
        A Keras dtype policy name: ``float32`` or ``mixed_bfloat16``.
    reason
        One line for the run manifest: what was asked for and what the hardware offers.
    """

    policy: str
    reason: str

    @property
    def short(self) -> str:
        """``fp32`` or ``bf16``, for tables and run names."""
        return SHORT[self.policy]

    def __str__(self) -> str:
        return f"{self.policy} ({self.reason})"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case (py-cpuinfo; ``/proc/cpuinfo`` as a fallback)."""
    try:
        import cpuinfo

        flags = cpuinfo.get_cpu_info().get("flags", [])
    except Exception:  # py-cpuinfo missing, or it could not run cpuid
        flags = []
    if not flags and Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].split()
                break
    return frozenset(flag.lower() for flag in flags)


def cpu_bf16_flags(flags: frozenset[str] | None = None) -> list[str]:
    """Which of :data:`BF16_CPU_FLAGS` the CPU has (empty: no native bfloat16)."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def gpu_bf16() -> str | None:
    """A description of the first visible GPU if it runs bfloat16 natively, else ``None``."""
    from helpers.profiles import gpu_available

    if not gpu_available():
        return None
    try:
        if keras.backend.backend() == "jax":
            import jax

            device = jax.devices()[0]
            capability = getattr(device, "compute_capability", None)
            name = device.device_kind
        else:
            import tensorflow as tf

            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0]
            )
            capability, name = details.get("compute_capability"), details.get("device_name")
    except Exception:
        return None
    if isinstance(capability, str):
        capability = tuple(int(part) for part in capability.split(".")[:2])
    if capability is None or tuple(capability) < BF16_GPU_CAPABILITY:
        return None
    return f"GPU {name} (compute capability {capability[0]}.{capability[1]})"


def auto_precision(flags: frozenset[str] | None = None, gpu: str | None = None) -> Precision:
    """``mixed_bfloat16`` where it trains faster (a bfloat16 GPU, a CPU with AMX), else ``float32``.

    ``flags`` and ``gpu`` default to this machine's (:func:`cpu_flags`, :func:`gpu_bf16`).
    A CPU with AVX512-BF16 but no AMX gets float32: it trains no faster in bfloat16.
    """
    gpu = gpu_bf16() if gpu is None and flags is None else gpu
    if gpu:
        return Precision("mixed_bfloat16", f"auto: {gpu} has bfloat16")
    flags = cpu_flags() if flags is None else flags
    paying = [flag for flag in BF16_PAYING_CPU_FLAGS if flag in flags]
    if paying:
        return Precision("mixed_bfloat16", f"auto: the CPU has {' and '.join(paying)}")
    native = cpu_bf16_flags(flags)
    if native:
        why = f"the CPU has {' and '.join(native)} but no AMX (bfloat16 trains no faster)"
    else:
        why = "neither a bfloat16 GPU nor a CPU with AMX (emulated bfloat16 would be slower)"
    return Precision("float32", f"auto: {why}")


def resolve_precision(name: str | None = None) -> Precision:
    """The precision called ``name``, else ``$BOOK_PRECISION``, else ``auto``.

    Raises
    ------
    ValueError
        For a name other than ``auto``, ``float32`` or ``mixed_bfloat16``.
    """
    chosen = name or os.environ.get(ENV_VAR) or "auto"
    key = chosen.strip().lower()
    if key not in CHOICES:
        raise ValueError(
            f"Unknown precision {chosen!r}. Valid values: {', '.join(CHOICES)}. "
            f"Set {ENV_VAR} to one of them (or unset it for auto)."
        )
    if key == "auto":
        return auto_precision()
    source = "asked for" if name else f"set by {ENV_VAR}"
    return Precision(key, source)


def model_policy(model: keras.Model) -> str:
    """``mixed_bfloat16`` if any layer of ``model`` computes in bfloat16, else ``float32``."""
    if any(layer.compute_dtype == "bfloat16" for layer in model.layers):
        return "mixed_bfloat16"
    return "float32"


_TWINS: dict[int, tuple[Any, keras.Model]] = {}


def float32_model(model: keras.Model) -> keras.Model:
    """``model`` itself if it computes in float32, else a float32 twin holding its weights.

    The twin is built once per model and its weights are copied from ``model`` on every
    call, so it follows weights that changed since (training, randomisation checks).
    """
    if model_policy(model) == "float32":
        return model
    hit = _TWINS.get(id(model))
    if hit is None or hit[0]() is not model:

        def as_float32(layer: keras.layers.Layer) -> keras.layers.Layer:
            config = {**layer.get_config(), "dtype": "float32"}
            return type(layer).from_config(config)

        twin = keras.models.clone_model(model, clone_function=as_float32)
        _TWINS[id(model)] = (weakref.ref(model), twin)
    else:
        twin = hit[1]
    twin.set_weights(model.get_weights())
    return twin
