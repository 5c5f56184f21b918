"""The CSV report quotes a cell a spreadsheet would run as a formula (OWASP CSV
injection); the JSON report keeps the value as it is."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from orchestrion.services.analytics.consumer import apply
from orchestrion.services.analytics.projection import ExecutionEvent
from tests.services.analytics.conftest import Headers, Platform

#: Ids are at most 36 characters, enough for a formula.
ATTACK = '=HYPERLINK("http://ev.il","x")'


async def test_report_csv_quotes_formula_cells(platform: Platform, admin: Headers) -> None:
    me = (await platform.client.get("/api/v1/auth/me", headers=admin)).json()
    at = datetime.now(UTC).replace(microsecond=0)
    for seq, kind in ((1, "execution.started"), (2, "execution.succeeded")):
        event = ExecutionEvent.model_validate(
            {
                "tenant_id": me["tenant_id"],
                "execution_id": "e-csv",
                "workflow_id": ATTACK,
                "event": {
                    "seq": seq,
                    "type": kind,
                    "step_id": None,
                    "data": {"workflow_version": 1} if seq == 1 else {},
                    "at": at.isoformat(),
                },
            }
        )
        await apply(platform.database, event)
    report = await platform.client.get("/api/v1/analytics/report?format=csv", headers=admin)
    assert report.status_code == 200, report.text
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [row["workflow_id"] for row in rows] == ["'" + ATTACK]
    assert rows[0]["executions"] == "1"
    as_json = await platform.client.get("/api/v1/analytics/report?format=json", headers=admin)
    assert [row["workflow_id"] for row in json.loads(as_json.text)["data"]] == [ATTACK]
