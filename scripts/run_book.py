"""Execute the book's chapters in order, in place, at one profile (the stored outputs).

Usage::

    BOOK_PROFILE=laptop python scripts/run_book.py                # every chapter in _toc.yml
    BOOK_PROFILE=laptop python scripts/run_book.py 02_regular 03_complementary --timeout 3600
    BOOK_PROFILE=laptop python scripts/run_book.py 07_gap --keep-outputs b78b67c5 aba56fa2
    BOOK_PROFILE=laptop python scripts/run_book.py 02_regular --only 843075fd 12a7aac2 a1b2c3d4 \
        --keep-outputs 843075fd 12a7aac2

Each chapter runs in a fresh kernel (nbclient) with the ``book/`` folder as working
directory, prints one progress line when it starts and one when it ends, and is stopped
after ``--timeout`` seconds. A chapter that fails is left exactly as it was on disk (the
executed copy is only written back when it ran cleanly), and the runner stops there.
The chapters record their numbers in ``book/results/<profile>.json`` as they run.
``--keep-outputs`` re-runs a chapter but keeps the stored outputs of the named cells, for
cells that need runs this machine does not have (the chapter says so in its prose).
``--only`` runs just the named cells, in the chapter's order, in one fresh kernel (the
cells a new cell needs, and the new cell); every other cell keeps its stored output. With
``--prelude FILE`` the code in FILE runs first, unstored: the variables a cell needs when
the cells that made them cannot run here (chapter 6's six models). The appendix
"Reproducing every number" lists the outputs made this way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

BOOK = Path(__file__).resolve().parents[1] / "book"


def toc_chapters(book: Path | None = None) -> list[str]:
    """Notebook chapters listed in ``_toc.yml``, in reading order (files without suffix)."""
    book = book or BOOK
    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [f for f in files if (book / f"{f}.ipynb").exists()]


def renumber(nb: nbformat.NotebookNode) -> None:
    """Execution counts 1, 2, ... from the top: a chapter whose cells ran in two kernels
    (``--only``) still reads, and checks, as one run in order."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
            for output in cell.get("outputs", []):
                if output.get("output_type") == "execute_result":
                    output["execution_count"] = count


def execute(
    name: str,
    timeout: int,
    book: Path | None = None,
    keep: Sequence[str] = (),
    only: Sequence[str] = (),
    prelude: str = "",
) -> float:
    """Run one chapter in place; returns its wall time in seconds.

    ``keep`` names cells (by cell id) whose stored outputs survive the run: the cells that
    need runs this machine does not have (the gap chapter's 299-px models), when the rest
    of the chapter is re-run. The chapter must say which outputs come from an earlier run.
    ``only`` (cell ids) runs just those cells, after ``prelude`` (code, never stored).

    Raises
    ------
    ValueError
        For a ``keep`` id that is not a cell of the chapter (before anything runs).
    """
    book = book or BOOK
    path = book / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    stored = {c.get("id"): (c.get("outputs"), c.get("execution_count")) for c in nb.cells}
    unknown = sorted(
        (set(keep) | set(only)) - {c.get("id") for c in nb.cells if c.cell_type == "code"}
    )
    if unknown:
        raise ValueError(
            f"{name} has no code cell with id {', '.join(unknown)}; --keep-outputs and --only "
            "take the 'id' of a code cell as stored in the notebook."
        )
    run_nb = nb
    if only:
        run_nb = nbformat.v4.new_notebook(metadata=nb.metadata)
        if prelude:
            run_nb.cells.append(nbformat.v4.new_code_cell(prelude))
        run_nb.cells += [c for c in nb.cells if c.get("id") in set(only)]
    client = NotebookClient(
        run_nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(book)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    if only:
        nb = nbformat.read(path, as_version=4)  # the cells that ran are the same objects
        ran = {c.get("id"): c for c in run_nb.cells}
        nb.cells = [ran.get(c.get("id"), c) if c.get("id") in set(only) else c for c in nb.cells]
    for cell in nb.cells:
        if cell.get("id") in keep:
            cell.outputs, cell.execution_count = stored[cell.id]
    if only:
        renumber(nb)  # after the kept cells are back, so the counts run 1, 2, ... in order
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter file names (default: the toc)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument(
        "--keep-outputs",
        nargs="+",
        default=[],
        metavar="CELL_ID",
        help="keep the stored outputs of these cells (ids) while the rest re-runs",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="CELL_ID",
        help="run only these cells (ids), in the chapter's order; the others keep their outputs",
    )
    parser.add_argument(
        "--prelude",
        type=Path,
        default=None,
        help="with --only: a Python file run first in the kernel, never stored",
    )
    args = parser.parse_args(argv)
    if args.prelude and not args.only:
        parser.error("--prelude needs --only")
    prelude = args.prelude.read_text(encoding="utf-8") if args.prelude else ""
    chapters = args.chapters or toc_chapters(BOOK)
    profile = os.environ.get("BOOK_PROFILE", "(default)")
    total = time.perf_counter()
    for i, name in enumerate(chapters, 1):
        print(f"[{i}/{len(chapters)}] {name} at profile {profile} ...", flush=True)
        try:
            seconds = execute(
                name, args.timeout, keep=args.keep_outputs, only=args.only, prelude=prelude
            )
        except (CellExecutionError, CellTimeoutError, DeadKernelError, ValueError) as err:
            print(
                f"[{i}/{len(chapters)}] {name} FAILED; the stored notebook is unchanged.\n{err}",
                flush=True,
            )
            return 1
        print(f"[{i}/{len(chapters)}] {name} done in {seconds / 60:.1f} min", flush=True)
    print(f"all {len(chapters)} chapters in {(time.perf_counter() - total) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
