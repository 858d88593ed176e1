#!/usr/bin/env python3
"""Check that chapter notebooks are fit to be the book: clean, stored outputs of a real run.

The book is built from the notebooks' stored outputs, so what is committed is what readers see.
Usage::

    python scripts/check_notebooks.py                 # every notebook under book/, all checks
    python scripts/check_notebooks.py --basic a.ipynb # the pre-commit subset, on given files

``--basic`` runs only the checks that every saved notebook must pass, even work in progress:
no error outputs, and widget state that keeps its ``state`` key. The full set adds what a
finished chapter needs (stored outputs of an in-order run, a printed run manifest, no stderr
with tracebacks or warnings, a ``python3`` kernel, no local paths, under 5 MB). The tests in
``tests/test_book_site.py`` run the full set on every chapter.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
MAX_BYTES = 5 * 1024 * 1024
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
LOCAL_PATHS = ("/work/", "/root/", "/home/", "/tmp/", "/Users/", "C:\\Users")
# Tracebacks and warnings on stderr mean the stored run was not clean (absl's "W0000" lines too).
STDERR_PROBLEMS = re.compile(r"Traceback \(most recent call last\)|warning|^W\d{4} ", re.I | re.M)
MANIFEST_CALL = "start_run("
MANIFEST_LINES = ("profile", "backend", "device")

Notebook = dict[str, Any]


def load(path: Path) -> Notebook:
    """The notebook at ``path`` as plain JSON (a clear error when it is not a notebook)."""
    try:
        nb: Notebook = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid notebook JSON: {err}") from err
    if not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path} has no list of cells: is it a Jupyter notebook?")
    return nb


def text(value: str | list[str] | None) -> str:
    """A notebook multi-line string (a string or a list of lines) as one string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else "".join(value)


def code_cells(nb: Notebook) -> list[dict[str, Any]]:
    """The code cells that hold some code."""
    return [c for c in nb["cells"] if c["cell_type"] == "code" and text(c["source"]).strip()]


def outputs(nb: Notebook) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every output of every code cell, with the cell's index."""
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            yield index, output


def check_no_errors(nb: Notebook) -> list[str]:
    """No cell output is an error (the stored run must have succeeded)."""
    return [
        f"cell {i}: error output {o.get('ename', '')}: {o.get('evalue', '')}"[:200]
        for i, o in outputs(nb)
        if o.get("output_type") == "error"
    ]


def check_widget_state(nb: Notebook) -> list[str]:
    """Saved widget state keeps its ``state`` key (without it GitHub and nbconvert fail)."""
    widgets = nb.get("metadata", {}).get("widgets")
    if widgets is None:
        return []
    state = widgets.get(WIDGET_STATE) if isinstance(widgets, dict) else None
    if not isinstance(state, dict) or "state" not in state:
        return [
            "metadata.widgets has no 'state' key: clear the widget state "
            "(Jupyter: Edit > Clear Notebook Widget State) or save it with the state included"
        ]
    return []


def check_outputs_stored(nb: Notebook) -> list[str]:
    """Every code cell ran, in order from the top, and the notebook has outputs to show."""
    cells = code_cells(nb)
    problems = []
    counts = [c.get("execution_count") for c in cells]
    if None in counts:
        problems.append(
            f"{counts.count(None)} of {len(cells)} code cells were never executed: "
            "regenerate the outputs (see CONTRIBUTING.md)"
        )
    ran = [n for n in counts if n is not None]
    if ran != sorted(ran) or len(set(ran)) != len(ran):
        problems.append("code cells were not executed once each from top to bottom: re-run all")
    if not any(c.get("outputs") for c in cells):
        problems.append("no stored outputs at all: the book shows the stored outputs")
    return problems


def check_stderr(nb: Notebook) -> list[str]:
    """No stderr output carries a traceback or a warning."""
    problems = []
    for i, o in outputs(nb):
        if o.get("output_type") == "stream" and o.get("name") == "stderr":
            match = STDERR_PROBLEMS.search(text(o.get("text")))
            if match:
                line = text(o.get("text"))[match.start() :].splitlines()[0]
                problems.append(f"cell {i}: stderr shows {line[:120]!r}")
    return problems


def check_manifest(nb: Notebook) -> list[str]:
    """A code cell calls ``start_run(`` and its stored output is the run manifest."""
    for cell in code_cells(nb):
        if MANIFEST_CALL in text(cell["source"]):
            printed = "".join(
                text(o.get("text"))
                for o in cell.get("outputs", [])
                if o.get("output_type") == "stream" and o.get("name") == "stdout"
            )
            missing = [k for k in MANIFEST_LINES if not re.search(rf"^{k}\b", printed, re.M)]
            if missing:
                return [f"the start_run( cell's output lacks the manifest lines {missing}"]
            return []
    return ['no code cell calls start_run("<chapter>"): every chapter prints its run manifest']


def check_kernelspec(nb: Notebook) -> list[str]:
    """The notebook names the ``python3`` kernel (what Colab and nbval start)."""
    name = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    return [] if name == "python3" else [f"kernelspec name is {name!r}, expected 'python3'"]


def _searchable(nb: Notebook) -> Iterator[tuple[str, str]]:
    # Sources, text outputs and metadata; not base64 images, where '/tmp/' can occur by chance.
    yield "metadata", json.dumps(nb.get("metadata", {}))
    for i, cell in enumerate(nb["cells"]):
        yield f"cell {i} source", text(cell["source"])
        for output in cell.get("outputs", []):
            yield f"cell {i} output", text(output.get("text"))
            yield f"cell {i} output", text(output.get("evalue"))
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    yield f"cell {i} output", data if isinstance(data, str) else json.dumps(data)


def check_local_paths(nb: Notebook) -> list[str]:
    """No absolute path of the machine that ran it (they leak and mean nothing to readers)."""
    problems = []
    for where, content in _searchable(nb):
        for path in LOCAL_PATHS:
            if path in content:
                start = content.index(path)
                problems.append(f"{where}: local path {content[start : start + 60]!r}")
    return sorted(set(problems))


def check_size(path: Path) -> list[str]:
    """The file stays under 5 MB (lower figure dpi or fewer images if not)."""
    size = path.stat().st_size
    if size >= MAX_BYTES:
        return [f"{size / 1e6:.1f} MB, the limit is {MAX_BYTES / 1e6:.1f} MB: lower figure dpi"]
    return []


BASIC: tuple[Callable[[Notebook], list[str]], ...] = (check_no_errors, check_widget_state)
FULL: tuple[Callable[[Notebook], list[str]], ...] = BASIC + (
    check_outputs_stored,
    check_stderr,
    check_manifest,
    check_kernelspec,
    check_local_paths,
)


def check(path: Path, basic: bool = False) -> list[str]:
    """Every problem found in the notebook at ``path`` (an empty list: it is fine)."""
    nb = load(path)
    problems = [p for fn in (BASIC if basic else FULL) for p in fn(nb)]
    if not basic:
        problems += check_size(path)
    return problems


def book_notebooks(book: Path = BOOK) -> list[Path]:
    """The notebooks of the book: ``book/**/*.ipynb`` outside the build and checkpoints."""
    skip = {"_build", ".ipynb_checkpoints"}
    return sorted(p for p in book.rglob("*.ipynb") if not skip & set(p.relative_to(book).parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all in book/)")
    parser.add_argument("--basic", action="store_true", help="only the pre-commit checks")
    args = parser.parse_args(argv)
    paths = [p for p in args.paths if p.suffix == ".ipynb"] if args.paths else book_notebooks()
    failed = 0
    for path in paths:
        problems = check(path, basic=args.basic)
        for problem in problems:
            print(f"{path}: {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
