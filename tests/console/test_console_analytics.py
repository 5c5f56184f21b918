"""The console's analytics and notifications pages, in a real browser against the shared
``orchestrion up`` (see conftest.py): after executions that succeed and fail, the charts
draw exactly the API's series, the summary, rows and SLOs say the API's figures; the
inbox shows an in-app message and marks it read.

The platform is shared with the other console tests, so figures are compared with what
the API answers, after the projections have counted this test's executions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.console.support import EMAIL, PASSWORD, Messages, Platform, go, shot, sign_in

PLAIN = {
    "name": "analytics-ok",
    "status": "active",
    "steps": [{"id": "one", "type": "transform", "with": {"v": 1}}],
}
# An LLM step on the loopback provider: 12 tokens in at $1/M and 5 out at $2/M.
PRICED = {
    "name": "analytics-priced",
    "status": "active",
    "steps": [
        {
            "id": "ask",
            "type": "llm",
            "with": {"provider": "oa", "model": "test-model", "prompt": "Say hello"},
        }
    ],
}
BROKEN = {
    "name": "analytics-broken",
    "status": "active",
    "steps": [
        {"id": "one", "type": "transform", "with": {"v": 1}},
        {"id": "boom", "type": "fail", "needs": ["one"], "with": {"message": "no"}},
    ],
}


@contextmanager
def _api(platform: Platform) -> Iterator[httpx.Client]:
    """An API client signed in as the console's admin."""
    with httpx.Client(base_url=platform.base, timeout=60) as client:
        token = client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        assert token.status_code == 200, token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


def _until(probe: Callable[[], Any], check: Callable[[Any], bool], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if check(found):
            return found
        assert time.monotonic() < deadline, f"not reached within {seconds} s: {found}"
        time.sleep(0.2)


def _run(api: httpx.Client, definition: dict[str, Any], times: int) -> list[str]:
    created = api.post("/api/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    for _ in range(times):
        started = api.post(
            f"/api/v1/workflows/{workflow_id}/executions?wait=30", json={"inputs": {}}
        )
        assert started.status_code in (200, 202), started.text
    return [workflow_id]


def _drawn(tab: Page, chart: str, series: str) -> dict[str, float]:
    """``{at: value}`` of the bars or points of one series of a chart."""
    marks = tab.locator(f'#{chart} [data-series="{series}"][data-at]')
    found: dict[str, float] = {}
    for i in range(marks.count()):
        mark = marks.nth(i)
        found[str(mark.get_attribute("data-at"))] = float(str(mark.get_attribute("data-value")))
    return found


def _nonzero(points: list[dict[str, Any]]) -> dict[str, float]:
    return {p["at"]: float(p["value"]) for p in points if p["value"]}


def test_analytics_charts_draw_the_api_figures(
    page: tuple[Page, Messages], platform: Platform
) -> None:
    tab, messages = page
    with _api(platform) as api:
        before = api.get("/api/v1/analytics/summary").json()["executions"]
        [ok] = _run(api, PLAIN, 3)
        [broken] = _run(api, BROKEN, 2)
        _run(api, PRICED, 1)
        slo = api.post(
            "/api/v1/analytics/slos",
            json={
                "name": "broken mostly works",
                "workflow_id": broken,
                "objective": "success_rate",
                "target": 0.9,
                "window": "1d",
            },
        )
        assert slo.status_code == 201, slo.text
        _until(
            lambda: api.get("/api/v1/analytics/summary").json()["executions"],
            lambda now: (
                now["succeeded"] >= before["succeeded"] + 3
                and now["failed"] >= before["failed"] + 2
            ),
        )

        sign_in(tab)
        expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
        go(tab, "Analytics")
        expect(tab.get_by_role("heading", name="Analytics", exact=True)).to_be_focused()
        executions = tab.get_by_role("img", name="Executions")
        expect(executions).to_be_visible()
        frm = tab.get_by_label("From (UTC)").input_value()
        to = tab.get_by_label("To (UTC)").input_value()
        span = {"from": f"{frm}:00Z", "to": f"{to}:00Z", "interval": "hour"}

        def series(metric: str, **extra: str) -> list[dict[str, Any]]:
            found = api.get(
                "/api/v1/analytics/timeseries", params={**span, "metric": metric, **extra}
            )
            assert found.status_code == 200, found.text
            return list(found.json()["data"])

        # One slot per API point; a bar per non-zero point, with the API's value.
        succeeded, failures, cost = series("succeeded"), series("failures"), series("cost_usd")
        expect(executions).to_have_attribute("data-points", str(len(succeeded)))
        assert _drawn(tab, "chart-executions", "succeeded") == _nonzero(succeeded)
        assert _drawn(tab, "chart-executions", "failed") == _nonzero(failures)
        assert _drawn(tab, "chart-failures", "failed") == _nonzero(failures)
        assert sum(_drawn(tab, "chart-failures", "failed").values()) >= 2
        # The line has a point for every interval (cost is never null).
        drawn_cost = _drawn(tab, "chart-cost", "cost")
        assert drawn_cost == {p["at"]: float(p["value"]) for p in cost}
        assert sum(drawn_cost.values()) >= 0.000022
        # Named and described, with the data as a table too.
        expect(executions).to_have_attribute("aria-describedby", "chart-executions-desc")
        total_failed = int(sum(p["value"] for p in failures))
        expect(tab.locator("#chart-failures-desc")).to_contain_text(
            f"Failed: {total_failed} in total"
        )
        expect(tab.locator("#chart-executions-table tbody tr")).to_have_count(len(succeeded))

        summary = api.get(
            "/api/v1/analytics/summary", params={"from": span["from"], "to": span["to"]}
        ).json()
        facts = tab.locator("#analytics-summary")
        expect(facts.locator('[data-fact="Executions"]')).to_have_text(
            str(summary["executions"]["total"])
        )
        expect(facts.locator('[data-fact="Failed"]')).to_have_text(
            str(summary["executions"]["failed"])
        )
        rows = tab.get_by_role("table", name="Per workflow")
        expect(rows.locator(f'[data-workflow="{broken}"]')).to_contain_text("analytics-broken")
        expect(rows.locator(f'[data-workflow="{broken}"] td').nth(2)).to_have_text("2")
        expect(rows.locator(f'[data-workflow="{ok}"] td').nth(1)).to_have_text("3")
        slos = tab.get_by_role("table", name="Service level objectives")
        row = slos.get_by_role("row").filter(has_text="broken mostly works")
        expect(row).to_contain_text("Not met")
        expect(row).to_have_attribute("data-met", "false")
        shot(tab, "analytics")

        # By day: the same executions in one slot per day, matching the API again.
        tab.get_by_label("Interval").select_option("day")
        expect(tab).to_have_url(f"{platform.base}/analytics?interval=day")
        expect(tab.get_by_role("img", name="Executions")).to_have_attribute("data-points", "30")
        frm = tab.get_by_label("From (UTC)").input_value()
        to = tab.get_by_label("To (UTC)").input_value()
        span = {"from": f"{frm}:00Z", "to": f"{to}:00Z", "interval": "day"}
        assert _drawn(tab, "chart-executions", "failed") == _nonzero(series("failures"))
        assert _drawn(tab, "chart-executions", "succeeded") == _nonzero(series("succeeded"))
    assert messages.unexpected() == []


def test_the_inbox_shows_a_message_and_marks_it_read(
    page: tuple[Page, Messages], platform: Platform
) -> None:
    tab, messages = page
    with _api(platform) as api:
        me = api.get("/api/v1/auth/me").json()["id"]
        sent = api.post(
            "/api/v1/notifications",
            json={
                "channel": "in_app",
                "to": me,
                "subject": "Nightly report ready",
                "body": "3 runs, 1 failed.",
            },
        )
        assert sent.status_code == 202, sent.text
        _until(
            lambda: api.get("/api/v1/notifications/inbox", params={"read": "false"}).json()["data"],
            lambda items: any(i["subject"] == "Nightly report ready" for i in items),
        )
        sign_in(tab)
        expect(tab.get_by_role("heading", name="Workflows")).to_be_visible()
        go(tab, "Notifications")
        expect(tab.get_by_role("heading", name="Notifications", exact=True)).to_be_focused()
        inbox = tab.get_by_role("list", name="Inbox")
        message = inbox.get_by_role("listitem").filter(has_text="Nightly report ready")
        expect(message).to_contain_text("3 runs, 1 failed.")
        expect(message).to_contain_text("Unread")
        shot(tab, "notifications")
        message.get_by_role("button", name="Mark “Nightly report ready” read").click()
        expect(tab.locator("#inbox-status")).to_have_text("Marked read.")
        expect(message).to_have_attribute("data-read", "true")
        expect(message.get_by_role("button")).to_have_count(0)
        [stored] = [
            i
            for i in api.get("/api/v1/notifications/inbox").json()["data"]
            if i["subject"] == "Nightly report ready"
        ]
        assert stored["read"] is True
        # Unread only: it is gone from there.
        tab.get_by_role("link", name="Show unread only").click()
        expect(tab.get_by_role("heading", name="Notifications", exact=True)).to_be_focused()
        expect(tab.get_by_text("Nightly report ready")).to_have_count(0)
    assert messages.unexpected() == []
