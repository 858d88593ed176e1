"""Does the book install into Google Colab's runtime without changing it, and do the chapters run there?

Colab publishes the exact packages of its runtimes (``pip-freeze.gpu.txt``). This check:

1. reads that list;
2. makes a virtual environment holding Colab's versions of the book's dependencies (every
   package pip installs is held to Colab's version by a constraints file made from the list),
   plus the test tools;
3. installs the book as the chapters' Colab set-up cell does (``pip install`` of the
   repository, without constraints) and **fails if any package changes version or
   disappears**, or if a package it adds is one Colab ships at another version;
4. unless ``--install-only``: runs ``pytest --nbval book/`` (the ``smoke`` profile) and the
   explorer's widget tests in that environment, on Colab's ipywidgets 7.

Colab runs Python 3.13; this check uses the Python that runs it (``--python`` to choose), and
says which. Usage (steps 1-3 take about 3 minutes, step 4 another 6-10 on 2 cores)::

    python scripts/check_colab_env.py --install-only      # CI
    python scripts/check_colab_env.py                     # before a release
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FREEZE = ROOT.parent / "shared" / "colab" / "pip-freeze.gpu.txt"
# What the chapters import in Colab (TensorFlow is the default backend there), and what runs them.
BOOK_PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "ipywidgets",
    "widgetsnbextension",
    "jupyterlab_widgets",
    "ipython",
    "ipykernel",
    "opencv-python-headless",
    "scikit-image",
    "matplotlib",
    "pillow",
    "scipy",
    "pooch",
    "tqdm",
    "filelock",
)
TEST_TOOLS = ("pytest", "nbval", "pytest-xdist", "nbclient", "nbformat")
COMPARED = ("tensorflow", "keras", "numpy", "ipywidgets", "widgetsnbextension", "ipython")


def normalise(name: str) -> str:
    """PEP 503 name: ``Jupyterlab_Widgets`` and ``jupyterlab-widgets`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(path: Path) -> dict[str, str]:
    """``name==version`` lines of a ``pip freeze`` file (others, e.g. ``@ file://``, skipped)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*", line)
        if match:
            pins[normalise(match[1])] = match[2]
    return pins


def compare(before: dict[str, str], after: dict[str, str], colab: dict[str, str]) -> list[str]:
    """Every way ``after`` changes Colab's packages (empty: none).

    A package of ``before`` that changed version or vanished is a change; so is a package
    added that Colab ships at another version. Packages Colab does not ship may be added.
    """
    problems = [
        f"{name} {version} -> {after.get(name, 'removed')}"
        for name, version in sorted(before.items())
        if after.get(name) != version
    ]
    problems += [
        f"{name} added at {version}, but Colab ships {colab[name]}"
        for name, version in sorted(after.items())
        if name not in before and name in colab and colab[name] != version
    ]
    return problems


def run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    """Run ``command``; on failure print its output and stop with its exit status."""
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, command))}")
    return done.stdout


def unavailable(pip_error: str) -> list[str]:
    """Packages pip says have no distribution for this environment (e.g. a Python 3.12+ wheel)."""
    block = pip_error.split("no matching distributions available for your environment:", 1)
    names = (
        re.findall(r"^\s{3,}([A-Za-z0-9][A-Za-z0-9._-]*)\s*$", block[1], re.M)
        if len(block) > 1
        else []
    )
    names += re.findall(r"No matching distribution found for ([A-Za-z0-9._-]+)==", pip_error)
    return [normalise(name) for name in names]


def install_colab_versions(python: Path, colab: dict[str, str], folder: Path) -> dict[str, str]:
    """Install the book's packages held to Colab's versions; return the pins this Python lacks.

    Colab's list is for Python 3.13: a dependency pinned there may have no release for the
    Python that runs the check. Such a pin is dropped (and reported) only for a dependency of
    a dependency; one of the book's own packages must install at Colab's version.
    """
    pins, dropped = dict(colab), {}
    for _ in range(30):
        constraints = folder / "colab-constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        done = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-c",
                str(constraints),
                *BOOK_PACKAGES,
                *TEST_TOOLS,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if not done.returncode:
            return dropped
        missing = [n for n in unavailable(done.stdout + done.stderr) if n in pins]
        own = [n for n in missing if n in {normalise(b) for b in BOOK_PACKAGES}]
        if not missing or own:
            print(done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(
                f"Colab's versions do not install here{': ' + ', '.join(own) if own else ''}."
            )
        for name in missing:
            dropped[name] = pins.pop(name)
    raise SystemExit("gave up: too many of Colab's pins have no release for this Python")


def installed(python: Path) -> dict[str, str]:
    listed = json.loads(run(python, "-m", "pip", "list", "--format=json"))
    return {normalise(p["name"]): p["version"] for p in listed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--freeze", type=Path, default=FREEZE, help=f"default: {FREEZE}")
    parser.add_argument("--venv", type=Path, default=ROOT / ".colab-venv")
    parser.add_argument("--python", default=sys.executable, help="Python for the environment")
    parser.add_argument("--source", default=str(ROOT), help="what the set-up cell installs")
    parser.add_argument("--install-only", action="store_true", help="skip the chapters")
    args = parser.parse_args()
    start = time.monotonic()
    if not args.freeze.is_file():
        raise SystemExit(f"No Colab package list at {args.freeze}: pass --freeze PATH.")
    colab = read_freeze(args.freeze)
    missing = [name for name in BOOK_PACKAGES if normalise(name) not in colab]
    if missing:
        raise SystemExit(f"{args.freeze} lacks {', '.join(missing)}: is it Colab's pip freeze?")

    run(args.python, "-m", "venv", "--clear", args.venv)
    python = args.venv / "bin" / "python"
    version = run(python, "-c", "import platform; print(platform.python_version())").strip()
    print(f"Colab list: {args.freeze.name} ({len(colab)} pinned packages)")
    print(f"environment: {args.venv.name}, Python {version} (Colab runs Python 3.13)")
    run(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
    dropped = install_colab_versions(python, colab, args.venv)
    if dropped:
        print(
            f"no release for Python {version}, so not held (dependencies of dependencies): "
            + ", ".join(f"{n} (Colab {v})" for n, v in sorted(dropped.items()))
        )
    before = installed(python)
    held = {n: v for n, v in before.items() if colab.get(n) == v}
    print(
        f"held at Colab's versions: {len(held)} of {len(before)} packages, e.g. "
        + ", ".join(f"{n} {before[normalise(n)]}" for n in COMPARED)
    )

    run(python, "-m", "pip", "install", "-q", args.source)  # what the set-up cell does
    after = installed(python)
    added = sorted(set(after) - set(before))
    problems = compare(before, after, colab)
    print(f"the book's install added: {', '.join(added) or 'nothing'}")
    if problems:
        print("the book's install CHANGES Colab's packages:")
        print("\n".join(f"  {p}" for p in problems))
        return 1
    print(
        f"the book's install changed none of the {len(before)} packages ({time.monotonic() - start:.0f} s)"
    )
    if args.install_only:
        return 0

    env = {**os.environ, "PATH": f"{args.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    for label, command in (
        ("explorer widgets", ("-m", "pytest", "-n", "0", "-q", "tests/test_explorer.py")),
        ("chapters", ("-m", "pytest", "-q", "--nbval", "book/")),
    ):
        began = time.monotonic()
        done = subprocess.run(
            [str(python), *command], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"{label}: {summary} ({time.monotonic() - began:.0f} s)")
        if done.returncode:
            print(done.stdout[-6000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            return done.returncode
    print(f"Colab environment check passed in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
