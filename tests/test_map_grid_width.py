"""Every stored map grid is at least 900 px wide, so that each map stays legible in the book.

A map grid is the figure of :func:`helpers.plots.explorer_grid` (stored as JPEG through
``as_jpeg``): chapter 4's figures, the four-class chapter's, and the gap chapter's 96-vs-299 px
grids, drawn by its ``figure(range(...))`` cells. This test finds them in the stored notebooks
(every ``book/*.ipynb``), by their code: a code cell whose source calls ``explorer_grid(`` or
``figure(range(``. It decodes every image output of such a cell and checks its width.

Grids stored before ``explorer_grid`` was redesigned (two rows per image, badges beside the
maps, a colour bar, about 1,175 px wide) and that cannot be drawn again on the machine that
redesigned it, because their models are not there, are listed in :data:`PENDING`. Each listed
grid is an expected failure, strictly: once it is stored again at 900 px or more, the test fails
until its entry is removed, so the list can only shrink. A grid under 900 px that is not listed
fails.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
MIN_WIDTH = 900
GRID_CALL = re.compile(r"\bexplorer_grid\(|^\s*figure\(range\(", re.M)
IMAGE_TYPES = ("image/jpeg", "image/png")

# Grids still stored at their old width, by (chapter name without its number, cell id): the
# name drops the number so that renumbering the chapters keeps the list. Remove an entry when
# its grid is stored again; the test says when.
PENDING: dict[tuple[str, str], str] = {}  # every grid is stored at its new width


def chapter_name(notebook: Path) -> str:
    """``07_gap.ipynb`` -> ``gap``: the chapter's name without its number."""
    return re.sub(r"^\d+_", "", notebook.stem)


def source(cell: dict[str, Any]) -> str:
    value = cell.get("source", "")
    return value if isinstance(value, str) else "".join(value)


def image_widths(cell: dict[str, Any]) -> list[int]:
    """The width in pixels of every JPEG or PNG a code cell's stored outputs hold."""
    widths = []
    for output in cell.get("outputs", []):
        for mime in IMAGE_TYPES:
            data = output.get("data", {}).get(mime)
            if data is not None:
                encoded = data if isinstance(data, str) else "".join(data)
                with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
                    widths.append(image.width)
    return widths


def grid_cells(notebook: Path) -> list[dict[str, Any]]:
    """The code cells of a notebook that draw a map grid."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c["cell_type"] == "code" and GRID_CALL.search(source(c))]


def all_grids() -> list[tuple[Path, dict[str, Any]]]:
    return [(nb, cell) for nb in sorted(BOOK.glob("*.ipynb")) for cell in grid_cells(nb)]


def grid_params() -> list[Any]:
    params = []
    for notebook, cell in all_grids():
        key = (chapter_name(notebook), cell["id"])
        marks = [pytest.mark.xfail(strict=True, reason=PENDING[key])] if key in PENDING else []
        params.append(pytest.param(notebook, cell, marks=marks, id=f"{notebook.stem}:{cell['id']}"))
    return params


@pytest.mark.parametrize(("notebook", "cell"), grid_params())
def test_map_grid_is_at_least_900_px_wide(notebook: Path, cell: dict[str, Any]) -> None:
    widths = image_widths(cell)
    if (chapter_name(notebook), cell["id"]) in PENDING:
        # A pending grid passes (and so fails the strict xfail) only once it is stored again.
        assert widths and min(widths) >= MIN_WIDTH, f"stored at {widths} px"
    narrow = [w for w in widths if w < MIN_WIDTH]
    assert not narrow, (
        f"{notebook.name} cell {cell['id']} stores a map grid {narrow} px wide, under "
        f"{MIN_WIDTH} px: store it again with the current helpers.plots.explorer_grid"
    )


def test_every_pending_grid_is_still_in_the_book() -> None:
    found = {(chapter_name(nb), cell["id"]) for nb, cell in all_grids()}
    stale = sorted(set(PENDING) - found)
    assert not stale, f"PENDING lists grids that no notebook stores any more: {stale}"


def test_the_grids_are_found() -> None:
    ids = {cell["id"] for nb, cell in all_grids() if nb.name == "04_gradcam.ipynb"}
    assert {"529bccf3", "8937bc14", "77611039", "64f53f87"} <= ids


def test_a_narrow_image_is_measured() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (613, 40)).save(buffer, format="PNG")
    cell = {
        "cell_type": "code",
        "source": ["figure(range(0, 5))"],
        "outputs": [{"data": {"image/png": base64.b64encode(buffer.getvalue()).decode()}}],
    }
    assert GRID_CALL.search(source(cell))
    assert image_widths(cell) == [613]
    assert not GRID_CALL.search("fig = figure()\nplot(range(3))")
