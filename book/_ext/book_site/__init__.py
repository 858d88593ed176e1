"""The book's own Sphinx extension: tables generated at build time, and a page-hygiene fix.

Loaded from ``_config.yml`` (``sphinx: local_extensions: {book_site: _ext}``). It adds

- ``{results-table}``: the headline results (ours from ``book/results/<profile>.json`` beside
  the original study's), so no number in the prose is retyped;
- ``{profiles-table}``: the run profiles, read from ``helpers.profiles.PROFILES``;
- ``{result}``: one value of the results store in the prose (``{result}`regular/test_accuracy:.1%```),
  for pages that cannot quote a notebook's glued values;
- ``{headline-figure}`` and ``{chapter-map}``: intro parts that follow what the book holds;
- ``{runs-by-device}``: the machines and precisions of the recorded runs (the appendix);
- a fix for inline scripts that Sphinx 7 writes twice on every page (see ``scripts.py``).
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

from book_site.intro_parts import ChapterMap, HeadlineFigure
from book_site.profiles_table import ProfilesTable
from book_site.provenance import RunsByDevice
from book_site.results_role import ResultRole
from book_site.results_table import ResultsTable
from book_site.scripts import drop_duplicate_scripts


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the script de-duplication with Sphinx."""
    app.add_directive("results-table", ResultsTable)
    app.add_directive("profiles-table", ProfilesTable)
    app.add_directive("headline-figure", HeadlineFigure)
    app.add_directive("chapter-map", ChapterMap)
    app.add_directive("runs-by-device", RunsByDevice)
    app.add_role("result", ResultRole())
    # Late priority: run after every extension has added its page assets.
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
