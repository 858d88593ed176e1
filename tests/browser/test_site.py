"""The built book in a real browser, offline: every page in the table of contents loads
cleanly, its figures and equations render, the intro shows the results table, the Colab badges
point at the right notebooks, and the static Grad-CAM explorer responds to its sliders.

Run after ``jupyter-book build -W book/``; one screenshot per page lands in ``screenshots/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, SCREENSHOTS, PageLog

BOOK = ROOT / "book"
GRADCAM_CHAPTER = "04_gradcam"
MATH_TIMEOUT_MS = 20_000
SCREENSHOT_MAX_HEIGHT = 40_000  # px; every chapter is shorter, the API reference is not


def toc_docnames(toc: dict[str, Any]) -> list[str]:
    """Every document of a jb-book ``_toc.yml``, root first, in reading order."""
    names = [toc["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(str(entry["file"]).removesuffix(".md").removesuffix(".ipynb"))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []) + toc.get("chapters", []))
    return names


TOC = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
PAGES = toc_docnames(TOC)


def colab_url(docname: str) -> str:
    """The Colab address of a chapter notebook, from the repository set in ``_config.yml``."""
    repo = CONFIG["repository"]
    owner_repo = repo["url"].removeprefix("https://github.com/").rstrip("/")
    colab = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    return (
        f"{colab}/github/{owner_repo}/blob/{repo['branch']}/{repo['path_to_book']}/{docname}.ipynb"
    )


def open_page(page: Any, base_url: str, docname: str) -> None:
    page.goto(f"{base_url}/{docname}.html", wait_until="load")
    # Lazy images load only near the viewport: make them all load now.
    page.evaluate(
        """() => Promise.all([...document.images].map(img => {
            img.loading = 'eager';
            return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
        }))"""
    )


def screenshot(page: Any, docname: str) -> Path:
    """The page, top down, to at most ``SCREENSHOT_MAX_HEIGHT`` pixels: the API reference is
    about 180,000 px tall, and its whole screenshot took 18 of the test's 29 s there."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / (docname.replace("/", "__") + ".png")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    width = page.viewport_size["width"]
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, SCREENSHOT_MAX_HEIGHT)}
    page.screenshot(path=str(path), full_page=True, clip=clip)
    return path


@pytest.mark.parametrize("docname", PAGES)
def test_page_renders_offline(
    offline_page: tuple[Any, PageLog], base_url: str, docname: str
) -> None:
    page, log = offline_page
    open_page(page, base_url, docname)

    has_math = page.locator(".math").count() > 0
    if has_math:
        page.wait_for_selector("mjx-container", state="attached", timeout=MATH_TIMEOUT_MS)
        assert page.locator("mjx-container").count() > 0
        assert page.locator("mjx-merror").count() == 0, "MathJax could not typeset an equation"

    broken = page.evaluate(
        "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.currentSrc || i.src)"
    )
    shot = screenshot(page, docname)
    print(f"screenshot: {shot}")
    if log.blocked:
        print(f"blocked (an offline reader cannot load them): {sorted(set(log.blocked))}")

    assert log.page_errors == [], f"uncaught script errors on {docname}: {log.page_errors}"
    assert log.unexpected_console_errors() == [], f"console errors on {docname}"
    assert log.failed_local == [], f"local resources that failed to load: {log.failed_local}"
    assert broken == [], f"images that did not load on {docname}: {broken}"


def test_intro_has_math_and_results_table(offline_page: tuple[Any, PageLog], base_url: str) -> None:
    page, _ = offline_page
    open_page(page, base_url, TOC["root"])
    page.wait_for_selector("mjx-container", state="attached", timeout=MATH_TIMEOUT_MS)
    table = page.locator("table.results-table")
    assert table.count() == 1, "the intro has no results table"
    text = table.inner_text()
    assert "Original study" in text and "93.75%" in text and "91.41%" in text
    rows = table.locator("tbody tr").count()
    assert rows in (2, 4), f"{rows} rows: three classes, then four once chapter 8 has run"
    if rows == 4:
        assert "four classes" in text and "about 60%" in text


def test_intro_states_the_answer_with_numbers(
    offline_page: tuple[Any, PageLog], base_url: str
) -> None:
    page, _ = offline_page
    open_page(page, base_url, TOC["root"])
    answer = page.locator("section#the-answer-in-short")
    assert answer.count() == 1, "the intro has no 'The answer in short' section"
    assert answer.locator(".problematic").count() == 0, "a quoted result did not render"
    text = answer.inner_text()
    # The two accuracies (article loss, regular) and the agreement counts, from the store.
    percentages = re.findall(r"\d+(?:\.\d+)?%", text)
    assert len(percentages) >= 2, f"the answer gives too few accuracies: {percentages}"
    assert re.search(r"at \d+ of the thirteen residual stages", text), "no stage count"
    assert answer.locator(".book-result").count() >= 4, "the numbers must come from the store"


@pytest.mark.parametrize("docname", [d for d in PAGES if (BOOK / f"{d}.ipynb").is_file()])
def test_colab_badge_points_at_this_notebook(
    offline_page: tuple[Any, PageLog], base_url: str, docname: str
) -> None:
    page, _ = offline_page
    open_page(page, base_url, docname)
    badge = page.locator("article a:has(img[src$='colab-badge.svg'])")
    assert badge.count() >= 1, f"{docname} has no Open in Colab badge"
    assert badge.first.get_attribute("href") == colab_url(docname)
    icon = badge.first.locator("img")
    assert icon.evaluate("i => i.naturalWidth") > 0, "the badge image did not load"
    # The theme's launch button must agree with the badge.
    launch = page.locator("a[href*='colab.research.google.com']:not(:has(img))")
    for href in launch.evaluate_all("links => links.map(a => a.href)"):
        assert href == colab_url(docname)


# Hooks documented in helpers.explorer.static_explorer_html.
EXPLORER = ".cam-explorer"
SLIDERS = {
    # slider class -> pictures (by id suffix) that must change when it moves
    "cam-explorer-image": ("-picture-image", "-picture-regular", "-picture-complementary"),
    "cam-explorer-layer": ("-picture-regular", "-picture-complementary"),
}


def pictures(explorer: Any) -> dict[str, dict[str, Any]]:
    """Each explorer picture's source and a fingerprint of its decoded pixels."""
    state: dict[str, dict[str, Any]] = explorer.evaluate(
        """async root => {
            const out = {};
            for (const img of root.querySelectorAll('img.cam-explorer-picture')) {
                await img.decode();
                const canvas = document.createElement('canvas');
                canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
                const ctx = canvas.getContext('2d');
                ctx.drawImage(img, 0, 0);
                const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
                let sum = 0;
                for (let i = 0; i < px.length; i += 7) sum = (sum * 31 + px[i]) % 1000000007;
                out[img.id] = {src: img.currentSrc || img.src, width: img.naturalWidth, pixels: sum};
            }
            return out;
        }"""
    )
    return state


def move(slider: Any) -> str:
    """Move a range input to its other end, as a reader's drag would, and say where."""
    value: str = slider.evaluate(
        """s => {
            s.value = s.value === s.max ? s.min : s.max;
            s.dispatchEvent(new Event('input', {bubbles: true}));
            s.dispatchEvent(new Event('change', {bubbles: true}));
            return s.value;
        }"""
    )
    return value


def test_gradcam_explorer_responds_to_sliders(
    offline_page: tuple[Any, PageLog], base_url: str
) -> None:
    if GRADCAM_CHAPTER not in PAGES:
        pytest.skip(f"the Grad-CAM chapter ({GRADCAM_CHAPTER}) is not in book/_toc.yml yet")
    page, log = offline_page
    open_page(page, base_url, GRADCAM_CHAPTER)
    explorers = page.locator(EXPLORER)
    assert explorers.count() >= 1, f"{GRADCAM_CHAPTER} has no static explorer ({EXPLORER})"
    for n in range(explorers.count()):
        explorer = explorers.nth(n)
        explorer.scroll_into_view_if_needed()
        eid = explorer.get_attribute("id")
        for slider_class, must_change in SLIDERS.items():
            slider = explorer.locator(f"input[type=range].{slider_class}")
            assert slider.count() == 1, f"explorer #{eid} has no {slider_class} slider"
            assert slider.get_attribute("max") != slider.get_attribute("min"), (
                f"explorer #{eid}: the {slider_class} slider has a single position"
            )
            before = pictures(explorer)
            value = move(slider)
            after = pictures(explorer)
            assert all(p["width"] > 0 for p in after.values()), "a picture did not load"
            for suffix in must_change:
                key = f"{eid}{suffix}"
                assert before[key]["src"] != after[key]["src"], (
                    f"moving {slider_class} to {value} left {key}'s source unchanged"
                )
                assert before[key]["pixels"] != after[key]["pixels"], (
                    f"moving {slider_class} to {value} left {key}'s pixels unchanged"
                )
    assert log.page_errors == []
