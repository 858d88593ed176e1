"""Fixtures for the browser test of the built book: a local web server and headless Chromium.

The test drives Debian's Chromium (``/usr/bin/chromium``) through Playwright's Python API and
never lets Playwright download a browser. Every request that does not go to the local server
is aborted, as on a machine without network, and recorded so that the test can tell an
unreachable external resource from a real error.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "book" / "_build" / "html"
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = Path(os.environ.get("BOOK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built site without logging every request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def site() -> Path:
    """The built HTML book (skips when it has not been built)."""
    if not (SITE / "index.html").is_file():
        pytest.skip(
            f"the book is not built ({SITE} has no index.html): run `jupyter-book build -W book/`"
        )
    return SITE


@pytest.fixture(scope="session")
def base_url(site: Path) -> Iterator[str]:
    """URL of a local HTTP server (port 0: any free port) serving the built book."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright (skips when either is missing)."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium) "
            "to run the browser test"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class PageLog:
    """What happened while a page loaded: console errors, uncaught errors, blocked requests."""

    console_errors: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed_local: list[str] = field(default_factory=list)

    def unexpected_console_errors(self) -> list[str]:
        """Console errors, less the failed loads of blocked external resources."""
        blocked = set(self.blocked)
        return [text for text, url in self.console_errors if url not in blocked]


@pytest.fixture
def offline_page(browser: Any) -> Iterator[tuple[Any, PageLog]]:
    """A fresh page whose requests to anything but localhost are aborted, and its log."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    log = PageLog()

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlparse(url).hostname in LOCAL_HOSTS:
            request_route.continue_()
        else:
            log.blocked.append(url)
            request_route.abort("internetdisconnected")

    context.route("**/*", route)
    page = context.new_page()

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            log.console_errors.append((msg.text, msg.location.get("url", "")))

    def on_request_failed(request: Any) -> None:
        if urlparse(request.url).hostname in LOCAL_HOSTS:
            log.failed_local.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda err: log.page_errors.append(str(err)))
    page.on("requestfailed", on_request_failed)
    try:
        yield page, log
    finally:
        context.close()
