"""Browser fixtures: Debian's Chromium driven by Playwright for Python, against the suite's server.

Skips, with the reason, when /usr/bin/chromium or the playwright package is missing: the
browsers that `playwright install` downloads are not used (and cannot be fetched here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.skip("playwright is not installed (pip install playwright; no browser download "
                    "needed)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def new_context(browser: Browser, server: Any) -> Iterator[Any]:
    """A factory of fresh browser contexts (separate storage: one per person in a test)."""
    made: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(base_url=server.base_url,
                                      viewport={"width": 1200, "height": 900})
        context.set_default_timeout(15_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture()
def page_errors() -> list[str]:
    """Uncaught page errors and CSP refusals, collected by `open_page`; a test asserts the
    list stays empty."""
    return []


@pytest.fixture()
def open_page(new_context: Any, page_errors: list[str]) -> Any:
    def make(context: BrowserContext | None = None) -> Page:
        page = (context or new_context()).new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        # What the Content-Security-Policy refused is a page error too.
        page.on("console", lambda message: page_errors.append(message.text)
                if "Content Security Policy" in message.text else None)
        return page

    return make

