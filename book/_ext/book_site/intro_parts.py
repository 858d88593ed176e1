"""Pieces of the intro that follow the book as it grows: the headline figure, the chapter map.

Both look at what exists when the book is built, so the intro never links to a chapter that is
not in ``_toc.yml`` yet (a warning, which ``-W`` turns into a failed build) and shows the
headline figure as soon as ``_static/headline.png`` is produced.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


class HeadlineFigure(SphinxDirective):
    """The figure at ``path`` with the directive's content as caption, if the file exists."""

    required_arguments = 1
    has_content = True
    option_spec = {"alt": directives.unchanged, "width": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        relative = self.arguments[0]
        source = Path(self.env.doc2path(self.env.docname)).parent / relative
        # Re-read the page when the figure appears or changes.
        self.env.note_dependency(str(source))
        if not source.is_file():
            return []
        image = nodes.image(uri=relative, alt=self.options.get("alt", ""))
        if "width" in self.options:
            image["width"] = self.options["width"]
        figure = nodes.figure("", image, classes=["headline-figure"])
        if self.content:
            caption = nodes.caption()
            self.state.nested_parse(self.content, self.content_offset, caption)
            # nested_parse wraps text in a paragraph; a caption holds inline text directly.
            for child in list(caption.children):
                if isinstance(child, nodes.paragraph):
                    caption.replace(child, child.children)
            figure += caption
        return [figure]


class ChapterMap(SphinxDirective):
    """A list of chapters, one ``docname | fallback title | summary`` line each.

    A chapter that is in the book links to its page (titled by the page itself); one that is
    not yet in ``_toc.yml`` is listed by its fallback title, marked as in preparation.
    """

    has_content = True

    def run(self) -> list[nodes.Node]:
        lines = []
        for number, raw in enumerate(self.content, start=1):
            parts = [part.strip() for part in raw.split("|")]
            if len(parts) != 3:
                raise self.error(
                    f"chapter-map line {number} must read 'docname | title | summary', got {raw!r}"
                )
            docname, title, summary = parts
            if docname in self.env.found_docs:
                lines.append(f"- {{doc}}`/{docname}`: {summary}")
            else:
                lines.append(f"- **{title}** (in preparation): {summary}")
        container = nodes.container(classes=["chapter-map"])
        self.state.nested_parse(StringList(lines, source=self.env.docname), 0, container)
        return list(container.children)
