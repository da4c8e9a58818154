"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright
(never `playwright install`), with the launch flags that work as root without a network, and
pages that reach nothing but 127.0.0.1. The fixtures are in tests/web/conftest.py (one browser
per test session: Playwright's sync API runs one event loop at a time)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
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


def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def local_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page of a new browser context (``options``: Playwright's, e.g. ``viewport``)."""
    context = browser.new_context(**options)
    page = context.new_page()

    def local_only(route: Route) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    page.route("**/*", local_only)
    yield page
    context.close()
