"""``{runs-by-device}``: which machine and precision trained the recorded runs of each store.

Arguments are results folders relative to ``book/`` (``results``, ``results/gap``, ...); the
table has one row per folder, device and precision, read at build time from the store
(``helpers.results.runs_by_device``), so the appendix never retypes a count.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

from book_site.tables import make_table


class RunsByDevice(SphinxDirective):
    """A table of the recorded training runs per results folder, device and precision."""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"profile": str}

    def run(self) -> list[nodes.Node]:
        from helpers.results import runs_by_device

        profile = self.options.get("profile", "laptop")
        book = Path(self.env.srcdir)
        rows = []
        for folder in self.arguments[0].split():
            path = book / folder
            self.env.note_dependency(str(path / f"{profile}.json"))
            found = runs_by_device(profile, path)
            if not found:
                raise self.error(f"runs-by-device: no recorded runs in {folder}/{profile}.json")
            for r in found:
                dates = r["first"] if r["first"] == r["last"] else f"{r['first']} to {r['last']}"
                rows.append([f"{folder}/", r["device"], r["precision"], str(r["runs"]), dates])
        header = ["results folder", "device", "precision", "runs", "recorded"]
        return [make_table(header, rows, classes=["runs-by-device"])]
