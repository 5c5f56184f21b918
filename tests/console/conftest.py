"""Fixtures of the console's browser tests: one ``orchestrion up`` shared by every test
of the package (as a user's browser shares one server), Debian's chromium, and a fresh
browser context per test that records what the page says on its console."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Error, Page, sync_playwright

from tests.console.support import WAIT_MS, Messages, Platform, running_platform, watch
from tests.fixtures.databases import server_missing
from tests.fixtures.llm import LlmServer, llm_server

__all__ = ["llm_server"]
CHROMIUM = os.environ.get("ORCHESTRION_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory, llm_server: LlmServer) -> Iterator[Platform]:
    """The platform the console's tests share."""
    with running_platform(tmp_path_factory.mktemp("console"), llm_server) as running:
        yield running


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        server_missing("chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install chromium)"))
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
        except Error as exc:
            server_missing("chromium", exc)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, platform: Platform) -> Iterator[tuple[Page, Messages]]:
    """A fresh browser context (empty sessionStorage) on the console, recording errors."""
    context = browser.new_context(base_url=platform.base, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    messages = watch(tab)
    yield tab, messages
    context.close()
