"""Build a docutils table from rows of cells, for the directives of this extension."""

from __future__ import annotations

from collections.abc import Sequence

from docutils import nodes

Cell = str | nodes.Node


def _entry(cell: Cell) -> nodes.entry:
    content = cell if isinstance(cell, nodes.Node) else nodes.Text(cell)
    paragraph = (
        content if isinstance(content, nodes.paragraph) else nodes.paragraph("", "", content)
    )
    return nodes.entry("", paragraph)


def _row(cells: Sequence[Cell]) -> nodes.row:
    return nodes.row("", *[_entry(cell) for cell in cells])


def make_table(
    header: Sequence[Cell],
    rows: Sequence[Sequence[Cell]],
    *,
    classes: Sequence[str] = (),
    title: str | None = None,
) -> nodes.table:
    """A table node with one header row; every row must have as many cells as ``header``."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"table row {list(row)!r} has {len(row)} cells, expected {len(header)}"
            )
    group = nodes.tgroup(cols=len(header))
    group += [nodes.colspec(colwidth=1) for _ in header]
    group += nodes.thead("", _row(header))
    group += nodes.tbody("", *[_row(row) for row in rows])
    table = nodes.table(classes=list(classes))
    if title:
        table += nodes.title(title, title)
    table += group
    return table
