"""``{results-table}``: the headline results, read from the results store at build time.

Our test accuracies come from ``book/results/<profile>.json``: the three-class row is the mean
± sd over every recorded seed of the loss sweep (regular and ``article``), the four-class row
over chapter 8's seeds, each with its number of seeds; the original study's are the single
runs it published, marked as such. A cell whose chapter has not been run says so instead of
showing a number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

from book_site.tables import make_table
from helpers.results import load_results, results_path

# (chapter, key, column title) for each column: the results-store entries the table shows.
COLUMNS = (
    ("regular", "test_accuracy", "Ordinary labels"),
    ("complementary", "test_accuracy", "Complementary labels only"),
)
# What the original study reported (Xception from scratch, 299x299, 128 test images).
ORIGINAL = {"regular": "93.75%", "complementary": "91.41%"}
# The four-class experiment (Motorbikes added; chapter 8): results-store entries per column,
# and what the original reported (only its complementary model's accuracy, "about 60%").
FOUR_CLASS_COLUMNS = (
    ("four_classes", "regular_test_accuracy"),
    ("four_classes", "article_test_accuracy"),
)
ORIGINAL_FOUR_CLASSES = ("not reported", "about 60%")
ONE_RUN = " (one run)"
# The loss sweep's key of each column's runs: one seed each, ``<loss>/seed<k>``.
SWEEP_LOSSES = {"regular": "crossentropy", "complementary": "article"}
# The first profile with any headline number wins: paper repeats the original's settings.
PREFERRED_PROFILES = ("paper", "laptop")
NOT_RUN = "not yet run"


def headline_entries(
    results_dir: Path, profiles: tuple[str, ...] = PREFERRED_PROFILES
) -> tuple[str | None, dict[str, dict[str, Any] | None]]:
    """The first profile in ``profiles`` with a headline entry, and its entry per chapter.

    Returns ``(None, {chapter: None, ...})`` when no profile has any headline number yet.
    """
    for profile in profiles:
        data = load_results(profile, results_dir)
        entries = {chapter: data.get(chapter, {}).get(key) for chapter, key, _ in COLUMNS}
        if any(entry is not None for entry in entries.values()):
            return profile, entries
    return None, {chapter: None for chapter, _, _ in COLUMNS}


def _check_fraction(number: Any, where: str) -> float:
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError(f"{where}: expected an accuracy between 0 and 1, got {number!r}")
    if not (0.0 <= float(number) <= 1.0) or math.isnan(float(number)):
        raise ValueError(
            f"{where}: accuracy {number!r} is outside [0, 1]; record fractions, not percentages"
        )
    return float(number)


def format_accuracy(value: Any, where: str = "results") -> str:
    """An accuracy as a percentage: one number, or mean ± sd over a list of seeds."""
    if isinstance(value, list | tuple):
        numbers = [_check_fraction(v, where) for v in value]
        if not numbers:
            raise ValueError(f"{where}: empty list of accuracies")
        if len(numbers) == 1:
            return f"{100 * numbers[0]:.2f}% (1 seed)"
        mean = sum(numbers) / len(numbers)
        sd = math.sqrt(sum((n - mean) ** 2 for n in numbers) / (len(numbers) - 1))
        return f"{100 * mean:.2f}% ± {100 * sd:.2f} ({len(numbers)} seeds)"
    return f"{100 * _check_fraction(value, where):.2f}%"


def sweep_accuracies(results_dir: Path, profile: str | None) -> dict[str, list[float]]:
    """Every recorded seed's true test accuracy per column, from the loss sweep of ``profile``.

    The runs are :func:`helpers.experiment.load_sweep`'s: the book's settings only (float32,
    the three classes, no overridden field, finished), in key order.
    """
    if profile is None:
        return {}
    from helpers.experiment import load_sweep

    rows = load_sweep(profile, results_dir)
    found = {
        column: [float(r["true_accuracy"]) for r in rows if r["loss"] == loss]
        for column, loss in SWEEP_LOSSES.items()
    }
    return {column: values for column, values in found.items() if values}


def provenance(profile: str | None, entries: dict[str, dict[str, Any] | None]) -> str:
    """One sentence saying where our numbers come from (or that there are none yet)."""
    if profile is None:
        wanted = " or ".join(PREFERRED_PROFILES)
        return (
            f"Our columns fill in once chapters 2 and 3 have been run at the {wanted} profile "
            "(their results are read from book/results/<profile>.json when the book is built)."
        )
    parts = []
    for chapter, entry in entries.items():
        if entry is not None:
            seed = entry.get("seed")
            if isinstance(entry.get("value"), list):
                seed_text = f", {len(entry['value'])} seeds"
            else:
                seed_text = "" if seed is None else f", seed {seed}"
            parts.append(
                f"{chapter}: {entry.get('backend', '?')} backend{seed_text}, "
                f"recorded {entry.get('date', '?')}"
            )
    return (
        f"Ours: profile {profile}, read from book/results/{profile}.json when the book was "
        f"built ({'; '.join(parts)})."
    )


def four_class_row(results_dir: Path, profile: str | None) -> list[list[str]] | None:
    """The four-class rows (ours, then the original's), or ``None`` before chapter 8 has run.

    Ours come from the same profile as the three-class row, so the table never mixes runs.
    """
    if profile is None:
        return None
    recorded = load_results(profile, results_dir)
    entries = [recorded.get(chapter, {}).get(key) for chapter, key in FOUR_CLASS_COLUMNS]
    if all(entry is None for entry in entries):
        return None
    ours = [f"This book, four classes ({profile} profile, article loss)"]
    for (chapter, key), entry in zip(FOUR_CLASS_COLUMNS, entries, strict=True):
        where = f"{results_path(profile, results_dir).name}: {chapter}/{key}"
        ours.append(NOT_RUN if entry is None else format_accuracy(entry["value"], where))
    original = [
        v + ONE_RUN if v[0].isdigit() or v.startswith("about") else v for v in ORIGINAL_FOUR_CLASSES
    ]
    return [ours, ["Original study, four classes", *original]]


class ResultsTable(SphinxDirective):
    """Render the headline table: regular vs complementary test accuracy, ours and original.

    Three classes first; the four-class rows follow once chapter 8 has recorded its numbers.
    """

    has_content = False
    option_spec = {"profile": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        results_dir = Path(self.env.srcdir) / "results"
        profiles = (self.options["profile"],) if "profile" in self.options else PREFERRED_PROFILES
        for name in PREFERRED_PROFILES + profiles:
            # Re-read this page whenever a results file changes (or appears).
            self.env.note_dependency(str(results_path(name, results_dir)))
        profile, entries = headline_entries(results_dir, profiles)
        swept = sweep_accuracies(results_dir, profile)
        ours = [f"This book, three classes ({profile} profile)" if profile else "This book"]
        for chapter, key, _ in COLUMNS:
            entry = entries[chapter]
            where = f"{results_path(profile or '?', results_dir).name}: {chapter}/{key}"
            try:
                if chapter in swept:
                    ours.append(format_accuracy(swept[chapter], f"{where} (sweep)"))
                else:
                    ours.append(
                        NOT_RUN if entry is None else format_accuracy(entry["value"], where)
                    )
            except (KeyError, ValueError) as err:
                raise self.error(f"results-table: {err}") from err
        header = ["Test accuracy", *[title for _, _, title in COLUMNS]]
        original = [
            "Original study, three classes",
            *[ORIGINAL[chapter] + ONE_RUN for chapter, _, _ in COLUMNS],
        ]
        note = nodes.paragraph(classes=["results-provenance"])
        note += nodes.Text(provenance(profile, entries))
        try:
            four = four_class_row(results_dir, profile)
        except ValueError as err:
            raise self.error(f"results-table: {err}") from err
        rows = [ours, original] if four is None else [ours, original, *four]
        table = make_table(header, rows, classes=["results-table"])
        return [table, note]
