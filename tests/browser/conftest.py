"""Browser tests: Debian's Chromium driven by Playwright's sync API against pytest-django's live server."""

import os
from pathlib import Path

import pytest

from tests.browser.pages import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, SCREENSHOTS, new_page

# Playwright's sync API keeps an event loop in this thread for the whole module (and pytest-django may
# run other transactional tests in between); the ORM calls made around it are synchronous and safe.
# Test processes only: subprocess helpers drop it again.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def desktop(browser, live_server):
    context, page = new_page(browser, live_server, **DESKTOP)
    yield page
    context.close()


@pytest.fixture
def phone(browser, live_server):
    context, page = new_page(browser, live_server, **PHONE)
    yield page
    context.close()


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / name
        page.screenshot(path=str(path), full_page=True)
        if docs := os.environ.get("DOC_SCREENSHOTS"):  # `make screenshots`: the README's small copies
            Path(docs).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(docs) / name), scale="css")
        return path

    return take
