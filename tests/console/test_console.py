"""The web console in a real browser: Debian's chromium driven by Playwright, against a
real ``orchestrion up``.

Every page's console messages and uncaught errors are collected and must be empty,
except the network errors a test provokes on purpose (a refused sign-in, a refused
definition), which the browser logs by itself.

``ORCHESTRION_CONSOLE_SCREENSHOTS=<dir>`` saves screenshots of the main pages there
(``docs/console`` holds the committed ones).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Error, Page, expect, sync_playwright

from tests.fixtures.databases import server_missing
from tests.fixtures.llm import LlmServer, llm_server
from tests.fixtures.processes import free_port, spawn, start_up, stop, wait_ready

CHROMIUM = os.environ.get("ORCHESTRION_TEST_CHROMIUM", "/usr/bin/chromium")
EMAIL = "admin@example.com"
PASSWORD = "console-password-1"
SCREENSHOTS = os.environ.get("ORCHESTRION_CONSOLE_SCREENSHOTS")
LLM_KEY = "console"
PRICES = {"test-model": {"input": 1.0, "output": 2.0}}
__all__ = ["llm_server"]
#: Generous: the machine running the suite may be busy; nothing here is timed.
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)

TRANSFORM = """\
name: doubler
description: doubles x
tags: [demo]
status: active
inputs:
  type: object
  properties: {x: {type: integer}}
  required: [x]
steps:
  - id: double
    type: transform
    with: {value: "{{ inputs.x * 2 }}"}
outputs:
  result: "{{ steps.double.output.value }}"
"""

APPROVAL = """{
  "name": "needs-approval",
  "status": "active",
  "steps": [
    {"id": "prepare", "type": "transform", "with": {"ready": true}},
    {"id": "sign_off", "type": "approval", "needs": ["prepare"], "with": {}}
  ],
  "outputs": {"approved": "{{ steps.sign_off.output.approved }}"}
}"""


@dataclass
class Platform:
    base: str
    home: Path


@dataclass
class Messages:
    """What the page said on its console, and what it threw."""

    seen: list[str] = field(default_factory=list)

    def unexpected(self, *allowed: str) -> list[str]:
        return [m for m in self.seen if not any(a in m for a in allowed)]


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
        yield Platform(base=base, home=home)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, llm_server: LlmServer) -> Iterator[Platform]:
    """The platform the module's tests share."""
    with running_platform(tmp_path_factory.mktemp("console"), llm_server) as running:
        yield running


@pytest.fixture(scope="module")
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
    messages = Messages()
    tab.on(
        "console",
        lambda m: (
            messages.seen.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    tab.on("pageerror", lambda e: messages.seen.append(f"pageerror: {e}"))
    yield tab, messages
    context.close()


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


def test_the_gateway_serves_the_console_with_a_strict_policy(platform: Platform) -> None:
    root = httpx.get(f"{platform.base}/")
    assert root.status_code == 200
    assert root.headers["content-type"].startswith("text/html")
    policy = root.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    deep = httpx.get(f"{platform.base}/workflows/some-id")
    assert deep.status_code == 200
    assert deep.text == root.text
    script = httpx.get(f"{platform.base}/console/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    missing = httpx.get(f"{platform.base}/console/missing.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"].endswith("/not-found")
    again = httpx.get(
        f"{platform.base}/console/app.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    head = httpx.head(f"{platform.base}/usage")
    assert head.status_code == 200
    assert head.content == b""
    refused = httpx.post(f"{platform.base}/")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    # The API and the gateway's own paths are not shadowed.
    assert httpx.get(f"{platform.base}/health/live").json() == {"status": "ok"}
    assert httpx.get(f"{platform.base}/api/v1/workflows").status_code == 401


def test_the_standalone_gateway_serves_the_console_too(tmp_path: Path) -> None:
    port = free_port()
    process = spawn(tmp_path, "gateway", "--host", "127.0.0.1", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        page = httpx.get(f"{base}/executions/some-id")
        assert page.status_code == 200
        assert '<script type="module" src="/console/app.js">' in page.text
        assert "content-security-policy" in page.headers
        assert httpx.get(f"{base}/console/style.css").status_code == 200
    finally:
        stop(process)


def test_a_wrong_password_is_shown(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab, password="not-the-password")
    alert = tab.get_by_role("alert").filter(has_text="invalid email or password")
    expect(alert).to_be_visible()
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(tab, "sign-in-error")
    assert messages.unexpected("status of 401") == []


def test_create_run_and_watch_a_workflow_succeed(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    create(tab, TRANSFORM)
    expect(tab.get_by_role("heading", name="doubler")).to_be_visible()
    shot(tab, "workflow")
    tab.get_by_label("Inputs (JSON)").fill('{"x": 21}')
    tab.get_by_role("button", name="Run", exact=True).click()
    expect(tab.locator("#execution-status")).to_contain_text("succeeded")
    expect(tab.locator("#outputs")).to_contain_text('"result": 42')
    shot(tab, "execution")
    # The list finds it by name, and links to it.
    tab.get_by_role("link", name="Workflows").click()
    tab.get_by_label("Name").fill("doubler")
    tab.get_by_role("button", name="Search").click()
    expect(tab.get_by_role("link", name="doubler")).to_be_visible()
    shot(tab, "workflows")
    assert messages.unexpected() == []


def test_approve_a_waiting_step(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    create(tab, APPROVAL)
    expect(tab.get_by_role("heading", name="needs-approval")).to_be_visible()
    tab.get_by_role("button", name="Run", exact=True).click()
    expect(tab.locator("#execution-status")).to_contain_text("waiting")
    expect(tab.locator('li[data-step="sign_off"]')).to_contain_text("approval · after prepare")
    approve = tab.get_by_role("button", name="Approve step sign_off")
    expect(approve).to_be_visible()
    shot(tab, "approval")
    approve.click()
    expect(tab.locator("#execution-status")).to_contain_text("succeeded")
    expect(tab.locator("#outputs")).to_contain_text('"approved": true')
    assert messages.unexpected() == []


def test_validation_errors_are_shown_next_to_the_editor(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    create(
        tab, '{"name": "broken", "steps": [{"id": "a", "type": "transform", "needs": ["nope"]}]}'
    )
    errors = tab.locator("#definition-errors")
    expect(errors).to_contain_text("needs unknown step 'nope'")
    expect(errors).to_contain_text("steps[0].needs[0]")
    expect(tab.get_by_label("Definition (JSON or YAML)")).to_have_attribute("aria-invalid", "true")
    shot(tab, "editor-errors")
    assert messages.unexpected("status of 422") == []


def test_usage_page(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    tab.get_by_role("navigation").get_by_role("link", name="Usage").click()
    expect(tab.get_by_role("heading", name="Usage and cost")).to_be_visible()
    expect(tab.get_by_role("heading", name="Usage and cost")).to_be_focused()
    assert messages.unexpected() == []


def test_edit_a_definition_makes_a_new_version(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    create(tab, TRANSFORM.replace("doubler", "editable"))
    expect(tab.get_by_role("heading", name="editable")).to_be_visible()
    editor = tab.get_by_label("Definition (JSON or YAML)")
    editor.fill(editor.input_value().replace('"doubles x"', '"doubles x, edited"'))
    tab.get_by_role("button", name="Save").click()
    expect(tab.get_by_role("status").filter(has_text="Saved")).to_have_text("Saved: version 2.")
    assert messages.unexpected() == []


def test_cancel_then_retry_an_execution(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    create(tab, APPROVAL.replace("needs-approval", "cancellable"))
    expect(tab.get_by_role("heading", name="cancellable")).to_be_visible()
    tab.get_by_role("button", name="Run", exact=True).click()
    status = tab.locator("#execution-status")
    expect(status).to_contain_text("waiting")
    tab.get_by_role("button", name="Cancel").click()
    expect(status).to_contain_text("cancelled")
    tab.get_by_role("button", name="Retry").click()
    expect(status).to_contain_text("waiting")
    tab.get_by_role("button", name="Reject step sign_off").click()
    expect(status).to_contain_text("failed")
    expect(tab.get_by_role("button", name="Retry")).to_be_visible()
    assert messages.unexpected() == []


LLM = """\
name: greeter
status: active
steps:
  - id: ask
    type: llm
    with: {provider: oa, model: test-model, prompt: Say hello}
outputs:
  text: "{{ steps.ask.output.text }}"
"""


def test_llm_tokens_stream_into_the_execution_view(
    page: tuple[Page, Messages], llm_server: LlmServer
) -> None:
    tab, messages = page
    # The provider holds its answer until the page is subscribed, then streams it.
    gate = llm_server.state.gates[LLM_KEY] = threading.Event()
    try:
        sign_in(tab)
        create(tab, LLM)
        expect(tab.get_by_role("heading", name="greeter")).to_be_visible()
        tab.get_by_role("button", name="Run", exact=True).click()
        expect(tab.get_by_text("Live updates on.")).to_be_visible()
        gate.set()
        expect(tab.locator('pre[data-tokens="ask"]')).to_have_text("Hello, world!")
        expect(tab.locator("#execution-status")).to_contain_text("succeeded")
        expect(tab.locator("#outputs")).to_contain_text('"text": "Hello, world!"')
        shot(tab, "llm-tokens")
        tab.get_by_role("navigation").get_by_role("link", name="Usage").click()
        row = tab.get_by_role("row").filter(has=tab.get_by_role("link", name="greeter"))
        # 12 tokens in at $1/M and 5 out at $2/M.
        expect(row).to_contain_text("$0.000022")
        shot(tab, "usage")
    finally:
        gate.set()
        llm_server.state.gates.pop(LLM_KEY, None)
    assert messages.unexpected() == []


def test_a_deep_link_signs_in_with_the_keyboard_alone(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    tab.goto("/workflows/new")
    heading = tab.get_by_role("heading", name="Sign in")
    expect(heading).to_be_focused()
    tab.keyboard.press("Tab")
    expect(tab.get_by_label("Email")).to_be_focused()
    tab.keyboard.type(EMAIL)
    tab.keyboard.press("Tab")
    expect(tab.get_by_label("Password")).to_be_focused()
    tab.keyboard.type(PASSWORD)
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("heading", name="New workflow")).to_be_focused()
    assert tab.url.endswith("/workflows/new")
    assert messages.unexpected() == []


def test_an_expired_access_token_is_refreshed(
    browser: Browser, llm_server: LlmServer, tmp_path: Path
) -> None:
    # A platform of its own: after this refresh, the shared one stopped answering the
    # next test's requests (seen on a loaded machine; noted for the auth service).
    with running_platform(tmp_path, llm_server) as own:
        context = browser.new_context(base_url=own.base)
        context.set_default_timeout(WAIT_MS)
        tab = context.new_page()
        messages = Messages()
        tab.on(
            "console",
            lambda m: (
                messages.seen.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        tab.on("pageerror", lambda e: messages.seen.append(f"pageerror: {e}"))
        try:
            refresh_after_a_bad_token(tab)
        finally:
            context.close()
    assert messages.unexpected("status of 401") == []


def refresh_after_a_bad_token(tab: Page) -> None:
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    stored = tab.evaluate("sessionStorage.getItem('orchestrion.session')")
    tokens = json.loads(stored)
    tab.evaluate(
        "t => sessionStorage.setItem('orchestrion.session', t)",
        # A token whose signature no longer verifies, as after a key rotation.
        json.dumps({**tokens, "access_token": tokens["access_token"][:-6] + "AAAAAA"}),
    )
    tab.get_by_role("navigation").get_by_role("link", name="Usage").click()
    expect(tab.get_by_role("heading", name="Usage and cost")).to_be_visible()
    refreshed = json.loads(tab.evaluate("sessionStorage.getItem('orchestrion.session')"))
    assert refreshed["access_token"] != tokens["access_token"]
    assert not refreshed["access_token"].endswith("AAAAAA")
    assert refreshed["refresh_token"] != tokens["refresh_token"]


def test_sign_out_forgets_the_session(page: tuple[Page, Messages]) -> None:
    tab, messages = page
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Workflows")).to_be_focused()
    tab.get_by_role("button", name="Sign out").click()
    expect(tab.get_by_role("heading", name="Sign in")).to_be_focused()
    assert tab.evaluate("sessionStorage.getItem('orchestrion.session')") is None
    tab.goto("/usage")
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible()
    assert messages.unexpected() == []
