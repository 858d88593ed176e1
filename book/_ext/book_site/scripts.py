"""Write each ``<script>`` once per page.

Why this exists: a stock jupyter-book 1.0.4 build (Sphinx 7.4) writes sphinx-thebe's inline
``<script>const THEBE_JS_URL = ...</script>`` twice into every page, and the second copy makes
the browser report ``Identifier 'THEBE_JS_URL' has already been declared`` (a SyntaxError that
also stops the rest of that script). The cause is in Sphinx, not in the book:

1. sphinx-thebe adds the inline script in ``env-before-read-docs``, i.e. *after* the HTML
   builder was initialised, with ``app.add_js_file(None, body=...)``. Sphinx stores it in the
   registry and also hands it straight to the builder as ``_JavaScript(None, body=...)``.
2. Before writing, ``StandaloneHTMLBuilder.prepare_writing`` re-adds every registry asset
   "registered after Builder.init()" as ``add_js_file(filename or '', ...)``. Its duplicate
   check compares filenames, and ``None != ''``, so every inline script registered late is
   written a second time (sphinx-togglebutton's ``var togglebuttonSelector`` too; ``var`` may be
   redeclared, so only thebe's ``const`` shows up as an error).

No configuration switches sphinx-thebe off in jupyter-book 1.x (it is always loaded, and
``launch_buttons.thebe: false`` only hides the button), so this handler removes the second copy
of any script, comparing ``None`` and ``''`` filenames as the same, just before each page is
rendered.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def script_key(script: Any) -> tuple[Any, ...]:
    """What makes two page scripts the same: file name (``None`` as ``''``) and attributes."""
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {})
    return (str(filename), tuple(sorted(attributes.items())))


def unique_scripts(scripts: list[Any]) -> list[Any]:
    """``scripts`` in order, keeping the first of each group that :func:`script_key` joins."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for script in scripts:
        key = script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    return kept


def drop_duplicate_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """``html-page-context`` handler: de-duplicate the page's ``script_files`` in place."""
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        # In place: Sphinx restores the builder's list from its own backup after each page.
        scripts[:] = unique_scripts(scripts)
