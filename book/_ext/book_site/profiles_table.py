"""``{profiles-table}``: the run profiles, generated from ``helpers.profiles.PROFILES``."""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

from book_site.tables import make_table
from helpers.profiles import PROFILES, Profile


def attribute_docs(cls: type) -> dict[str, str]:
    """Descriptions from the ``Attributes`` section of a NumPy-style class docstring."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Attributes\n-+\n(.*?)(?:\n\S[^\n]*\n-+\n|\Z)", doc, re.S | re.M)
    if match is None:
        return {}
    docs: dict[str, list[str]] = {}
    current = None
    for line in match.group(1).splitlines():
        if line and not line[0].isspace():
            current = line.split(":")[0].strip()
            docs[current] = []
        elif current is not None and line.strip():
            docs[current].append(line.strip())
    return {name: " ".join(words) for name, words in docs.items()}


def with_literals(text: str) -> nodes.paragraph:
    """A paragraph of ``text`` in which ````code```` spans (as docstrings write them) are literal."""
    paragraph = nodes.paragraph()
    for i, part in enumerate(re.split(r"``(.+?)``", text)):
        if part:
            paragraph += nodes.literal(part, part) if i % 2 else nodes.Text(part)
    return paragraph


def format_setting(value: Any) -> str:
    """A profile setting as a reader would write it."""
    if value is None:
        return "all"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def profile_rows(profiles: dict[str, Profile]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per setting, one column per profile, then its meaning."""
    docs = attribute_docs(Profile)
    names = list(profiles)
    rows = []
    for field in dataclasses.fields(Profile):
        if field.name == "name":
            continue
        values = [getattr(profiles[n], field.name) for n in names]
        if field.name == "extra" and not any(values):
            continue  # an empty escape hatch is not worth a row
        label = field.name.replace("_", " ")
        rows.append([label, *[format_setting(v) for v in values], docs.get(field.name, "")])
    return ["Setting", *names, "Meaning"], rows


class ProfilesTable(SphinxDirective):
    """Render the table of run profiles (smoke, laptop, paper) from the helpers package."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        # Re-read the page whenever the profiles change.
        self.env.note_dependency(inspect.getfile(Profile))
        header, rows = profile_rows(PROFILES)
        cells = [[*row[:-1], with_literals(row[-1])] for row in rows]
        return [make_table(header, cells, classes=["profiles-table"])]
