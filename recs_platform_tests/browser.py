"""Debian's Chromium driven by Playwright, as every browser test launches it.

`playwright install` cannot download a browser here; CI installs Debian's `chromium`. Without it
the tests fail with that instruction, never skip.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).is_file():
        pytest.fail(
            f"Chromium not found (no `chromium` on PATH, no {executable}): the browser tests "
            "need Debian's chromium package (`apt-get install chromium`), which CI installs."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Browser, init_script: str | None = None) -> BrowserContext:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    context.set_default_navigation_timeout(10_000)
    if init_script:
        context.add_init_script(init_script)
    return context
