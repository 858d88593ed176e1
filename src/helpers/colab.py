"""The chapters' Colab set-up: say what was installed, choose the profile, ask for a restart only when needed.

Every chapter's first cell, in Colab only, installs this package from the repository named in
``book/_config.yml`` and then calls :func:`report_install`. The package's dependencies are
ranges that Colab's own versions satisfy (``pyproject.toml``), so the install adds the
``helpers`` package and changes none of Colab's packages; ``scripts/check_colab_env.py``
checks that against Colab's published package list. Should a later version of the book need a
newer package than Colab ships, pip would upgrade a module the kernel may already have
imported; :func:`stale_modules` finds those, and :func:`report_install` then says to restart.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

from helpers.manifest import package_versions
from helpers.profiles import ENV_VAR, default_profile_name

# Distribution name -> module name, for the packages whose upgrade would need a restart.
WATCHED = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "jax": "jax",
    "numpy": "numpy",
    "ipywidgets": "ipywidgets",
    "matplotlib": "matplotlib",
    "opencv-python-headless": "cv2",
    "scikit-image": "skimage",
    "scipy": "scipy",
    "pillow": "PIL",
}


def installed_version(distribution: str) -> str | None:
    """The version pip has installed (``None`` if absent)."""
    return package_versions((distribution,)).get(distribution)


def stale_modules(
    loaded: Mapping[str, object] | None = None, watched: Mapping[str, str] = WATCHED
) -> list[str]:
    """Packages whose imported version differs from the installed one: ``"numpy 2.1.3 -> 2.3.0"``.

    A module imported before ``pip install`` keeps running the old code until the kernel
    restarts; only a restart makes the new version take effect.
    """
    loaded = sys.modules if loaded is None else loaded
    stale = []
    for distribution, module_name in watched.items():
        module = loaded.get(module_name)
        running = getattr(module, "__version__", None)
        now = installed_version(distribution)
        if running and now and str(running) != now:
            stale.append(f"{distribution} {running} -> {now}")
    return stale


def report_install(
    repository: str, shown: Iterable[str] = ("tensorflow", "keras", "ipywidgets")
) -> str:
    """After the Colab install: set ``BOOK_PROFILE`` and print (and return) one line about it.

    ``BOOK_PROFILE`` is set from the runtime (``paper`` on a GPU, ``laptop`` otherwise) unless
    the reader set it already, so scripts started from the notebook see the same profile.
    """
    profile = os.environ.setdefault(ENV_VAR, default_profile_name())
    kept = ", ".join(
        f"{name} {version}" for name, version in package_versions(tuple(shown)).items()
    )
    line = (
        f"installed helpers {installed_version('helpers')} from {repository}; "
        f"Colab's packages kept ({kept}); {ENV_VAR}={profile}"
    )
    stale = stale_modules()
    if stale:
        line += (
            f". Restart the runtime (Runtime > Restart session) and run this cell again: "
            f"pip changed {', '.join(stale)}"
        )
    print(line)
    return line
