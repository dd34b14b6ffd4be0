"""Browser tests: Debian's Chromium driven by Playwright's sync API against pytest-django's live server."""

import os
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop in this thread for the whole module (and pytest-django may
# run other transactional tests in between); the ORM calls made around it are synchronous and safe.
# Test processes only: subprocess helpers drop it again.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


DESKTOP = {"viewport": {"width": 1366, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def new_page(browser, live_server, **options):
    context = browser.new_context(base_url=live_server.url, **options)
    context.set_default_timeout(10_000)
    return context, context.new_page()


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
        return path

    return take
