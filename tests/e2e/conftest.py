"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live_server.

Without Chromium they are skipped, saying how to get it; on CI (CI set, as .ci/run and CI services
do) a missing Chromium stops the run instead, so CI cannot pass without them.
"""

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.factories import aware, make_images

# E2E_CHROMIUM: another Chromium to drive (and how the gate below is tested without uninstalling one).
CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
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
SCREENSHOTS = ROOT / "var" / "screenshots"
DESKTOP = {"viewport": {"width": 1366, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def on_ci() -> bool:
    """CI services set CI (true, 1, True...); so does .ci/run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_chromium(chromium: Path) -> str | None:
    """What to tell a person whose machine lacks ``chromium``, or None when it is there."""
    if chromium.is_file() and os.access(chromium, os.X_OK):
        return None
    return (
        f"the browser tests need Chromium at {chromium}: scripts/test installs it "
        "(or sudo apt-get install chromium; E2E_CHROMIUM=/path/to/chromium picks another)"
    )


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what they will
def pytest_collection_modifyitems(config, items):
    browser_tests = [item for item in items if item.get_closest_marker("e2e")]
    problem = missing_chromium(CHROMIUM) if browser_tests else None
    if problem is None:
        return
    if on_ci():
        pytest.exit(f"CI is set and {problem}", returncode=pytest.ExitCode.USAGE_ERROR)
    for item in browser_tests:
        item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(scope="module", autouse=True)
def _allow_orm_beside_playwright():
    """Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls beside one.

    Allowed for these tests only: the variable must not reach other tests' subprocesses
    (``manage.py check --deploy`` rightly fails when it is set).
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def browser(_allow_orm_beside_playwright):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """open_page(phone=False) -> a fresh page at a desktop (1366x900) or phone (390x844) viewport."""
    contexts = []

    def open_page(*, phone: bool = False):
        context = browser.new_context(**(PHONE if phone else DESKTOP))
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot():
    """screenshot(page, name): saved under var/screenshots/ on every run, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def screenshot(page, name: str, *, full_page: bool = False) -> Path:
        # Lazy thumbnails load as they scroll into view: load them all first, so the picture shows
        # the page as a person sees it once it has settled, not grey boxes still on their way.
        page.evaluate(
            """() => Promise.all([...document.images].map(img => {
                img.loading = "eager";
                return img.decode().catch(() => null);
            }))"""
        )
        page.evaluate("document.fonts.ready")
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return screenshot


@pytest.fixture
def gallery(transactional_db, live_server):
    """60 committed images (the live server reads them from its own connection) in three folders."""
    return (
        make_images(30, start=100, folder="holidays/2023", taken=aware(2023, 7, 1, 12))
        + make_images(20, start=130, folder="holidays/2024", fmt="PNG", taken=aware(2024, 6, 1, 12))
        + make_images(10, start=150, folder="work", taken=aware(2022, 3, 1, 12))
    )
