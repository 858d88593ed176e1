"""``{result}``: one value of the results store, quoted in the prose at build time.

Markdown pages cannot quote a notebook's glued values, so the intro (and a chapter that glued
nothing) quotes the results store instead::

    {result}`regular/test_accuracy:.1%`          -> 96.1%
    {result}`agreement/layers_below_control:len` -> 0
    {result}`sweep/best_loss:code`               -> ``forward``

The text is ``path[:format]``. The path names a chapter of ``book/results/<profile>.json``,
then a key (keys may contain ``/``), then optionally fields inside the recorded value. Two
names are not chapters of the store:

- ``profile``: the profile the numbers come from;
- ``sweep/...``: the loss sweep summarised over seeds, as chapter 3's table shows it:
  ``sweep/seeds`` (fewest seeds of any loss), ``sweep/<loss>/<field>`` with the fields of
  :func:`helpers.experiment.summarise` (``true_accuracy_mean``, ``true_accuracy_std``,
  ``n``, ...), ``sweep/best_loss`` and ``sweep/best/<field>`` for the complementary loss
  from the literature (neither the reference nor ``article``) with the highest mean true
  accuracy (a test-set pick: optimistic), and ``sweep/chosen_loss`` and
  ``sweep/chosen/<field>`` for the complementary loss chosen without the test set
  (:func:`helpers.experiment.select_by_validation`: highest validation pseudo accuracy).

The format is a Python format spec (``.1%``, ``.2f``), or ``len`` (how many items), or
``code`` (shown as code). Without one, a list is joined with commas (``none`` when empty) and
anything else is shown with ``str``.

Every value comes from the profile that the intro's results table shows (the first of
``paper``, ``laptop`` with a headline number), so all the numbers of a page come from one run.
An unknown path or format stops the build (with or without ``-W``), never leaves a blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxRole

from book_site.results_table import PREFERRED_PROFILES, headline_entries
from helpers.results import load_results, results_path

SWEEP = "sweep"
SWEEP_CHAPTER = "complementary_sweep"
REFERENCE_LOSS = "crossentropy"
ORIGINAL_LOSS = "article"


class ResultError(LookupError):
    """A path or format that the results store cannot answer; the message says why."""


def quoted_profile(results_dir: Path) -> str:
    """The profile whose numbers the book quotes: the one the results table shows."""
    profile, _ = headline_entries(results_dir)
    if profile is None:
        wanted = " or ".join(PREFERRED_PROFILES)
        raise ResultError(
            f"no headline results at the {wanted} profile in {results_dir.name}/: run chapters "
            "2 and 3 (they record regular/test_accuracy and complementary/test_accuracy)"
        )
    return profile


def sweep_summary(profile: str, results_dir: Path) -> dict[str, Any]:
    """The sweep as ``sweep/...`` paths see it (empty when no sweep ran at ``profile``)."""
    # Imported here: helpers.experiment loads Keras, which only the sweep paths need.
    from helpers.experiment import load_sweep, select_by_validation, summarise, sweep_findings

    rows = load_sweep(profile, results_dir)
    if not rows:
        return {}
    summary: dict[str, Any] = dict(summarise(rows))
    found = sweep_findings(rows)
    others = [loss for loss, _, _ in found["ranking"] if loss != ORIGINAL_LOSS]
    summary["seeds"] = found["min_seeds"]
    if others:
        summary["best_loss"] = others[0]
        summary["best"] = summary[others[0]]
    try:
        chosen, _ = select_by_validation(rows)
    except ValueError:  # runs recorded without histories: "chosen" is then an unknown field
        return summary
    summary["chosen_loss"] = chosen
    summary["chosen"] = summary[chosen]
    return summary


def _descend(value: Any, fields: list[str], where: str) -> Any:
    for field in fields:
        if not isinstance(value, Mapping) or field not in value:
            known = sorted(value) if isinstance(value, Mapping) else []
            raise ResultError(f"{where} has no field {field!r}; it has {known}")
        value = value[field]
        where = f"{where}/{field}"
    return value


def lookup(path: str, results_dir: Path, profile: str | None = None) -> tuple[str, Any]:
    """``(profile, value)`` at ``path`` (see the module docstring); :class:`ResultError` if none."""
    profile = profile or quoted_profile(results_dir)
    parts = [part for part in path.strip().split("/") if part]
    if parts == ["profile"]:
        return profile, profile
    if not parts:
        raise ResultError("empty path: write chapter/key, e.g. regular/test_accuracy")
    store = results_path(profile, results_dir).name
    chapter, rest = parts[0], parts[1:]
    if chapter == SWEEP:
        summary = sweep_summary(profile, results_dir)
        if not summary:
            raise ResultError(f"{store} holds no loss sweep: run scripts/sweep_losses.py")
        return profile, _descend(summary, rest, f"{store}: sweep")
    entries = load_results(profile, results_dir).get(chapter)
    if entries is None:
        raise ResultError(
            f"{store} has no chapter {chapter!r}; it has {sorted(load_results(profile, results_dir))}"
        )
    # The longest prefix of the rest that is a recorded key: keys may contain "/".
    for cut in range(len(rest), 0, -1):
        key = "/".join(rest[:cut])
        if key in entries:
            return profile, _descend(entries[key]["value"], rest[cut:], f"{store}: {chapter}/{key}")
    raise ResultError(
        f"{store} has no key {'/'.join(rest)!r} in chapter {chapter!r}; it has {sorted(entries)}"
    )


def format_value(value: Any, spec: str) -> str:
    """``value`` as the prose shows it: ``spec`` is a format spec, ``len``, ``code`` or empty."""
    if spec == "len":
        if not isinstance(value, list | tuple | Mapping):
            raise ResultError(f"'len' needs a list, got {value!r}")
        return str(len(value))
    if spec in ("", "code"):
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value) or "none"
        if isinstance(value, float):
            raise ResultError(f"give a format for the number {value!r}, e.g. :.1% or :.2f")
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultError(f"format {spec!r} needs a number, got {value!r}")
    try:
        return format(value, spec)
    except ValueError as err:
        raise ResultError(f"bad format {spec!r} for {value!r}: {err}") from err


def render(text: str, results_dir: Path) -> tuple[str, bool]:
    """The text that ``{result}`text``` shows, and whether to show it as code."""
    path, _, spec = text.partition(":")
    _, value = lookup(path, results_dir)
    return format_value(value, spec.strip()), spec.strip() == "code"


class ResultRole(SphinxRole):
    """``{result}`chapter/key[:format]```: a value of the results store as inline text."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        results_dir = Path(self.env.srcdir) / "results"
        for name in PREFERRED_PROFILES:
            # Re-read this page whenever a results file changes (or appears).
            self.env.note_dependency(str(results_path(name, results_dir)))
        try:
            shown, as_code = render(self.text, results_dir)
        except ResultError as err:
            # A hard error, with or without -W: a page must never show a blank or a stale
            # number where the store cannot answer.
            source, line = self.get_source_info()
            raise ExtensionError(f"{source}:{line}: {{result}}`{self.text}`: {err}") from err
        node_class = nodes.literal if as_code else nodes.inline
        return [node_class(self.rawtext, shown, classes=["book-result"])], []
