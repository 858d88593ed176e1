"""The story is short: the intro and the chapters of the toc's first part total at most 8,000 words.

The issue asks that "the story's chapters (intro and chapters 1-5) total at most about 8,000 words
of prose". Which chapters make up the story is read from ``book/_toc.yml`` (its first part), so a
chapter added to that part is counted without changing this file.

What counts as prose (:func:`prose_words`): the words of the Markdown, that is ``intro.md`` and
the Markdown cells of the notebooks, exercises and their solutions' explanations included. Code
is not prose and is left out: code cells, fenced code blocks (a backtick or colon fence whose
info string is empty, a language such as ``python`` or ``bash``, or a code directive such as
``{code-block}``), display math (``$$ ... $$``) and inline math (``$ ... $``), MyST directive
option lines (``:class: dropdown``), section labels (``(label)=``), HTML comments and tags, and
link targets. A role counts as its shown text: ``{term}`logits <logit>``` as "logits", a role
without such text (``{result}`...```, ``{glue:text}`...```, ``{doc}`07_gap```) as one word,
``{cite}`...``` as none. The other Markdown punctuation (headings, emphasis, lists, tables) is
counted as the words it holds. A word is a run of letters and digits (with ``'``, ``’``, ``-``
and ``_`` inside it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
MAX_STORY_WORDS = 8000

WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")
FENCE = re.compile(r"^\s*(`{3,}|:{3,})\s*(.*)$")
# Info strings that open a block of code rather than a directive holding prose.
CODE_INFO = re.compile(r"^(|\w[\w+-]*|\{(code|code-block|code-cell|sourcecode)\}.*)$")
OPTION_LINE = re.compile(r"^\s*:[\w-]+:")
LABEL_LINE = re.compile(r"^\s*\([\w:-]+\)=\s*$")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.S)
INLINE_MATH = re.compile(r"\$[^$\n]+\$")
CITE = re.compile(r"\{cite(?::\w+)?\}`[^`]*`")
ROLE_WITH_TEXT = re.compile(r"\{[\w:-]+\}`([^`<]*?)\s*<[^`>]*>`")
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def strip_code(markdown: str) -> str:
    """The Markdown without its fenced code blocks, directive option lines and labels.

    A fence closes on a line of the same character at least as long as the one that opened it.
    Inside a code fence everything is dropped; a directive fence (``:::{admonition} Solution``)
    drops only its opening and closing lines and keeps its body, whose own fences are handled
    the same way.
    """
    kept: list[str] = []
    directives: list[str] = []  # the fences of the directives we are in, innermost last
    code_fence: str | None = None  # the fence that opened the code block we are in

    def closes(fence: str, opening: str) -> bool:
        return fence[0] == opening[0] and len(fence) >= len(opening)

    for line in markdown.splitlines():
        match = FENCE.match(line)
        if code_fence is not None:
            if match and not match[2].strip() and closes(match[1], code_fence):
                code_fence = None
            continue
        if not match:
            if not (OPTION_LINE.match(line) or LABEL_LINE.match(line)):
                kept.append(line)
            continue
        fence, info = match[1], match[2].strip()
        if not info and directives and closes(fence, directives[-1]):
            directives.pop()
        elif not info and fence[0] == ":":
            pass  # a stray closing colon fence
        elif CODE_INFO.match(info):
            code_fence = fence
        else:  # a directive such as ``{admonition} Title``: keep its title, drop its name
            directives.append(fence)
            kept.append(re.sub(r"^\{[\w:-]+\}", "", info))
    return "\n".join(kept)


def prose_words(markdown: str) -> int:
    """How many words of prose ``markdown`` holds (see the module docstring for the rules)."""
    text = HTML_COMMENT.sub(" ", markdown)
    text = strip_code(text)
    text = DISPLAY_MATH.sub(" ", text)
    text = CITE.sub(" ", text)
    text = ROLE_WITH_TEXT.sub(r" \1 ", text)
    text = ROLE.sub(" N ", text)
    text = INLINE_MATH.sub(" ", text)
    text = IMAGE.sub(" ", text)
    text = LINK.sub(r" \1 ", text)
    text = HTML_TAG.sub(" ", text)
    return len(WORD.findall(text))


def page_markdown(path: Path) -> str:
    """The Markdown of a page: a ``.md`` file's text, or a notebook's Markdown cells."""
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    cells: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = ("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return "\n\n".join(sources)


def story_pages() -> list[Path]:
    """The intro and every chapter of the toc's first part ("The story"), in order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]] + [entry["file"] for entry in toc["parts"][0]["chapters"]]
    pages = []
    for name in names:
        found = [BOOK / f"{name}{suffix}" for suffix in (".md", ".ipynb")]
        found = [path for path in found if path.is_file()]
        assert found, f"_toc.yml lists {name}, but book/ has no {name}.md or {name}.ipynb"
        pages.append(found[0])
    return pages


def test_counter_counts_prose_only() -> None:
    markdown = """(sec-label)=
## Two heads

The model's logits, {term}`logits <logit>` {cite}`chollet2017xception` and $p_{\\bar y}$ reach
{result}`regular/test_accuracy:.1%`. <!-- not counted -->

$$
a + b = c
$$

```python
print("code is not prose")
```

:::{admonition} Solution
:class: dropdown

Well-known words [here](https://example.org).

```{code-block} python
x = 1
```
:::
"""
    # "Two heads" 2, "The model's logits, logits and reach N" 7, "Solution" 1,
    # "Well-known words here" 3; the label, the citation, the math, the comment, the option
    # line and both code blocks count nothing.
    assert prose_words(markdown) == 13
    assert prose_words("``` \ncode\n```\nword") == 1
    assert prose_words("````markdown\n```python\nx\n```\n````\none two") == 2


def test_story_pages_come_from_the_toc() -> None:
    pages = story_pages()
    assert pages[0] == BOOK / "intro.md"
    assert BOOK / "01_data.ipynb" in pages and BOOK / "04_gradcam.ipynb" in pages
    assert BOOK / "07_gap.ipynb" not in pages, "the gap chapter is not part of the story"


def test_the_story_totals_at_most_8000_words() -> None:
    words = {path.name: prose_words(page_markdown(path)) for path in story_pages()}
    total = sum(words.values())
    assert total <= MAX_STORY_WORDS, (
        f"the story holds {total} words of prose, more than {MAX_STORY_WORDS}: {words}"
    )


def test_chapter_5_is_short_with_one_figure() -> None:
    # Issue 31: the story's chapter 5 states the verdict in at most about 1,500 words and one
    # figure (the difference to the control); the rest of the measurement is the lab's.
    chapter = BOOK / "05_agreement.ipynb"
    assert chapter in story_pages()
    assert prose_words(page_markdown(chapter)) <= 1500
    nb = json.loads(chapter.read_text(encoding="utf-8"))
    figures = [c for c in nb["cells"] if "figure" in c["metadata"].get("mystnb", {})]
    assert len(figures) == 1, f"chapter 5 shows {len(figures)} figures, expected one"
