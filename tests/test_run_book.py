"""scripts/run_book.py: chapters from the toc, executed in place, failures leave files alone."""

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_book", ROOT / "scripts" / "run_book.py")
run_book = importlib.util.module_from_spec(spec)
sys.modules["run_book"] = run_book
spec.loader.exec_module(run_book)


def _book(tmp_path, cells):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: x\n    chapters:\n"
        "      - file: ch\n      - file: appendix/missing\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, tmp_path / "ch.ipynb")
    return tmp_path


def test_toc_chapters_are_the_notebooks_in_order():
    assert run_book.toc_chapters()[0] == "01_data"
    assert all((ROOT / "book" / f"{c}.ipynb").exists() for c in run_book.toc_chapters())


def test_execute_in_place_with_the_book_as_working_directory(tmp_path):
    book = _book(tmp_path, ["import os\nprint(os.path.basename(os.getcwd()))"])
    assert run_book.toc_chapters(book) == ["ch"]
    run_book.execute("ch", timeout=60, book=book)
    out = nbformat.read(book / "ch.ipynb", as_version=4).cells[0].outputs
    assert out[0]["text"].strip() == tmp_path.name


def test_a_failing_chapter_leaves_the_stored_notebook_unchanged(tmp_path, monkeypatch):
    book = _book(tmp_path, ["print('fine')", "raise RuntimeError('boom')"])
    before = (book / "ch.ipynb").read_bytes()
    monkeypatch.setattr(run_book, "BOOK", book)
    assert run_book.main(["ch", "--timeout", "60"]) == 1
    assert (book / "ch.ipynb").read_bytes() == before


def test_kept_cells_keep_their_stored_outputs_and_unknown_ids_are_refused(
    tmp_path, capsys, monkeypatch
):
    book = _book(tmp_path, ["print('first run')", "print('first run')"])
    run_book.execute("ch", timeout=60, book=book)
    nb = nbformat.read(book / "ch.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[1].source = "print('second run')"
    nbformat.write(nb, book / "ch.ipynb")
    kept = nb.cells[1].id
    run_book.execute("ch", timeout=60, book=book, keep=[kept])
    after = nbformat.read(book / "ch.ipynb", as_version=4)
    assert [c.outputs[0]["text"].strip() for c in after.cells] == ["second run", "first run"]
    before = (book / "ch.ipynb").read_bytes()
    monkeypatch.setattr(run_book, "BOOK", book)
    assert run_book.main(["ch", "--keep-outputs", "no-such-id"]) == 1
    assert "no code cell with id no-such-id" in capsys.readouterr().out
    assert (book / "ch.ipynb").read_bytes() == before


def test_only_runs_the_named_cells_after_the_prelude_and_keeps_the_rest(tmp_path):
    book = _book(tmp_path, ["print('old 0')", "print(base + 1)", "print('never runs')"])
    nb = nbformat.read(book / "ch.ipynb", as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="stored 0\n")]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="stored 2\n")]
    nb.cells[0].execution_count, nb.cells[2].execution_count = 4, 9  # an earlier full run
    nbformat.write(nb, book / "ch.ipynb")
    ids = [c.id for c in nb.cells]
    run_book.execute(
        "ch", timeout=60, book=book, only=[ids[0], ids[1]], keep=[ids[0]], prelude="base = 41"
    )
    after = nbformat.read(book / "ch.ipynb", as_version=4)
    assert [c.id for c in after.cells] == ids  # the prelude is never stored
    assert [c.outputs[0]["text"] for c in after.cells] == ["stored 0\n", "42\n", "stored 2\n"]
    assert [c.execution_count for c in after.cells] == [1, 2, 3]  # one run, in order
    with pytest.raises(ValueError, match="no code cell with id nope"):
        run_book.execute("ch", timeout=60, book=book, only=["nope"])
