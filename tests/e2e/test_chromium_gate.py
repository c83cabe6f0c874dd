"""Without Chromium the browser tests are skipped with a way to get it, except on CI where the run stops."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_browser_tests(**environ: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    env.update(E2E_CHROMIUM="/nonexistent/chromium", **environ)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/e2e/test_search_page.py"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_without_chromium_the_browser_tests_are_skipped_saying_how_to_get_it():
    result = run_browser_tests()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "passed" not in output and "failed" not in output and " skipped" in output
    assert "the browser tests need Chromium at /nonexistent/chromium: scripts/test installs it" in output
    assert "apt-get install chromium" in output


def test_on_ci_a_missing_chromium_stops_the_run():
    result = run_browser_tests(CI="true")
    output = result.stdout + result.stderr
    assert result.returncode == 4, output  # pytest's usage error: nothing ran, nothing passed
    assert "CI is set and the browser tests need Chromium at /nonexistent/chromium" in output
    assert "skipped" not in output
