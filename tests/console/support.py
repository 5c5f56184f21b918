"""Helpers of the console's browser tests: the platform they run against, signing in,
creating a workflow, the page's console messages and screenshots."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.fixtures.llm import LlmServer
from tests.fixtures.processes import Spawned, free_port, start_up, stop, wait_ready

EMAIL = "admin@example.com"
PASSWORD = "console-password-1"
SCREENSHOTS = os.environ.get("ORCHESTRION_CONSOLE_SCREENSHOTS")
LLM_KEY = "console"
PRICES = {"test-model": {"input": 1.0, "output": 2.0}}
#: Generous: the machine running the suite may be busy; nothing here is timed.
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)


@dataclass
class Platform:
    base: str
    home: Path
    process: Spawned


@dataclass
class Messages:
    """What the page said on its console, and what it threw."""

    seen: list[str] = field(default_factory=list)

    def unexpected(self, *allowed: str) -> list[str]:
        return [m for m in self.seen if not any(a in m for a in allowed)]


def watch(tab: Page) -> Messages:
    """Record ``tab``'s console errors and warnings and its uncaught exceptions."""
    messages = Messages()
    tab.on(
        "console",
        lambda m: (
            messages.seen.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    tab.on("pageerror", lambda e: messages.seen.append(f"pageerror: {e}"))
    return messages


@contextmanager
def running_platform(home: Path, llm: LlmServer) -> Iterator[Platform]:
    """``orchestrion up`` on a free loopback port, with a known admin and an LLM provider."""
    port = free_port()
    provider = {"kind": "openai", "base_url": llm.openai(LLM_KEY), "api_key": "sk-test"}
    process = start_up(
        home,
        port,
        ORCHESTRION_ADMIN_EMAIL=EMAIL,
        ORCHESTRION_ADMIN_PASSWORD=PASSWORD,
        ORCHESTRION_LLM__PROVIDERS=json.dumps({"oa": provider}),
        ORCHESTRION_LLM__PRICING=json.dumps(PRICES),
        # Every test signs in afresh, more often than the default allows from one address.
        ORCHESTRION_GATEWAY__LOGIN_RATE_LIMIT="1000/minute",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        yield Platform(base=base, home=home, process=process)
    finally:
        stop(process)


def shot(tab: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def sign_in(tab: Page, password: str = PASSWORD) -> None:
    tab.goto("/")
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible()
    tab.get_by_label("Email").fill(EMAIL)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()


def create(tab: Page, definition: str) -> None:
    tab.get_by_role("link", name="New workflow").click()
    expect(tab.get_by_role("heading", name="New workflow")).to_be_visible()
    tab.get_by_label("Definition (JSON or YAML)").fill(definition)
    tab.get_by_role("button", name="Create workflow").click()


def go(tab: Page, link: str) -> None:
    """Follow a link of the main navigation."""
    tab.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True).click()
