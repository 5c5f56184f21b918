"""The console's "Sign in with <provider>" buttons, in chromium, through a real OpenID
provider (``oidc-provider``) and a platform started with it configured."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.support import WAIT_MS, Messages, shot
from tests.fixtures.oidc_provider import running_provider
from tests.fixtures.processes import free_port, start_up, stop, wait_ready


@pytest.fixture(scope="module")
def sso_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``orchestrion up`` with the provider as ``local``; the console may return to it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_provider(base) as provider:
        process = start_up(
            tmp_path_factory.mktemp("console-sso"),
            port,
            ORCHESTRION_ADMIN_EMAIL="admin@example.com",
            ORCHESTRION_ADMIN_PASSWORD="console-password-1",
            ORCHESTRION_AUTH__OIDC_PROVIDERS=json.dumps(
                {"local": provider.settings("local", display_name="Local IdP")}
            ),
            ORCHESTRION_AUTH__SSO_REDIRECT_URIS=f"{base}/sign-in",
        )
        try:
            wait_ready(base, process)
            yield base
        finally:
            stop(process)


@pytest.fixture
def sso_page(browser: Browser, sso_base: str) -> Iterator[tuple[Page, Messages]]:
    """A fresh context; what the console's own pages say on their console (the provider's
    development pages want a web font and a favicon this offline machine lacks)."""
    context = browser.new_context(base_url=sso_base, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    messages = Messages()
    tab.on(
        "console",
        lambda m: (
            messages.seen.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") and m.location.get("url", "").startswith(sso_base)
            else None
        ),
    )
    tab.on("pageerror", lambda e: messages.seen.append(f"pageerror: {e}"))
    yield tab, messages
    context.close()


def _to_provider(tab: Page) -> None:
    tab.goto("/workflows")  # a page that needs a session: the console asks to sign in first
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible()
    tab.get_by_role("link", name="Sign in with Local IdP").click()
    tab.get_by_placeholder("Enter any login").fill("erin@example.test")
    tab.get_by_placeholder("and password").fill("anything")
    tab.get_by_role("button", name="Sign-in").click()
    expect(tab.get_by_role("button", name="Continue")).to_be_visible()


def test_sign_in_with_a_provider(sso_page: tuple[Page, Messages], sso_base: str) -> None:
    tab, messages = sso_page
    _to_provider(tab)
    tab.get_by_role("button", name="Continue").click()
    # Back at the console, signed in, on the page asked for first, with no code in sight.
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    expect(tab.locator("#who")).to_have_text("erin@example.test")
    assert tab.url == f"{sso_base}/workflows"
    shot(tab, "sign-in-sso")
    assert messages.unexpected() == []


def test_cancelling_at_the_provider_is_shown(sso_page: tuple[Page, Messages]) -> None:
    tab, messages = sso_page
    _to_provider(tab)
    tab.get_by_role("link", name="[ Cancel ]").click()
    alert = tab.get_by_role("alert").filter(has_text="cancelled at the provider")
    expect(alert).to_be_visible()
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "error=" not in tab.url
    assert messages.unexpected() == []
