"""API versions: ``/api/v2/...`` served beside v1, the old routes announcing their end.

A route with ``rewrite`` serves another prefix's API under its own (listed in the
OpenAPI document too); a route with ``deprecation`` answers ``Deprecation`` (RFC 9745),
``Sunset`` (RFC 8594) and ``Link`` headers, and its operations say ``deprecated``.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from orchestrion.gateway.config import ConfigError, GatewayConfig
from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.fixtures.lifespan import in_process

CONFIG = """
routes:
  - prefix: /api/v2/workflows
    service: workflows
    rewrite: /api/v1/workflows
  - prefix: /api/v1/workflows
    service: workflows
    deprecation:
      since: 2026-01-01T00:00:00Z
      sunset: 2027-06-30T12:00:00Z
      successor: /api/v2/workflows
      policy: https://docs.example.com/deprecations
"""


async def test_v2_beside_a_deprecated_v1(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG)
    settings = make_settings(tmp_path, database_url, gateway={"config": config})
    async with in_process(create_embedded_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

            created = await http.post(
                "/api/v2/workflows",
                json={
                    "name": "versioned",
                    "steps": [{"id": "a", "type": "transform", "with": {"v": 1}}],
                },
            )
            assert created.status_code == 201, created.text
            assert "deprecation" not in created.headers
            workflow_id = created.json()["id"]

            old = await http.get(f"/api/v1/workflows/{workflow_id}")
            new = await http.get(f"/api/v2/workflows/{workflow_id}")
            assert old.status_code == new.status_code == 200
            assert old.json() == new.json()
            assert (
                old.headers["deprecation"]
                == f"@{int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())}"
            )
            assert parsedate_to_datetime(old.headers["sunset"]) == dt.datetime(
                2027, 6, 30, 12, tzinfo=dt.UTC
            )
            assert old.headers["link"] == (
                '</api/v2/workflows>; rel="successor-version", '
                '<https://docs.example.com/deprecations>; rel="deprecation"'
            )
            assert not {"deprecation", "sunset", "link"} & set(new.headers)
            # Errors of the old route say it too: a client learns it whatever it asked.
            missing = await http.get("/api/v1/workflows/nothing-here")
            assert missing.status_code == 404
            assert missing.headers["deprecation"] == old.headers["deprecation"]

            document = (await http.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/api/v2/workflows/{workflow_id}"]) == set(
        paths["/api/v1/workflows/{workflow_id}"]
    )
    ids = [
        op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op
    ]
    assert len(ids) == len(set(ids))
    assert paths["/api/v1/workflows"]["get"]["deprecated"] is True
    assert "deprecated" not in paths["/api/v2/workflows"]["get"]
    assert "deprecated" not in paths["/api/v1/executions/{execution_id}"]["get"]


@pytest.mark.parametrize(
    ("deprecation", "named"),
    [
        ("{sunset: 2027-01-01}", "deprecation.since"),
        ("{since: yesterday}", "deprecation.since"),
        ("{since: 2026-01-01, successor: '<evil>'}", "deprecation.successor"),
        ("{since: 2026-01-01, until: 2027-01-01}", "deprecation.until"),
    ],
)
def test_a_bad_deprecation_names_its_field(tmp_path: Path, deprecation: str, named: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"routes:\n  - prefix: /api/v1/workflows\n    service: workflows\n"
        f"    deprecation: {deprecation}\n"
    )
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        GatewayConfig.load(config)
