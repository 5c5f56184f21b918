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
import threading
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.console.support import (
    EMAIL,
    LLM_KEY,
    PASSWORD,
    Messages,
    Platform,
    create,
    shot,
    sign_in,
)
from tests.fixtures.llm import LlmServer
from tests.fixtures.processes import free_port, spawn, stop, wait_ready

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


def test_an_expired_access_token_is_refreshed(page: tuple[Page, Messages]) -> None:
    # On the shared platform: it once ran on a platform of its own, because the next
    # test's requests hung after it (the server blocked writing its log to a full pipe,
    # see test_a_server_that_logged_past_a_pipe_buffer_still_answers).
    tab, messages = page
    refresh_after_a_bad_token(tab)
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
    # The tab reopened with it: the page's calls (the list and who is signed in, at
    # once) are refused, share one refresh (a refresh token used twice would revoke the
    # session) and are replayed.
    tab.reload()
    expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
    expect(tab.locator("#who")).to_have_text(EMAIL)
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
