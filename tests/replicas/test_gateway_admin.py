"""Two gateway processes sharing Redis: what ``/admin`` changes on one (drain, weights,
an instance added or removed by hand) the other applies, told over pub/sub.

Before, each gateway kept its admin changes to itself (issue 21).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.processes import free_port
from tests.replicas.conftest import Replicas, sign_in

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

REDIS_URL = "redis://127.0.0.1:6379/0"
#: How long a change may take to show on the other gateway before the test gives up
#: (the promise is about a second; a loaded machine gets room, the time is printed).
PATIENCE = 20.0


@pytest.mark.postgres
async def test_admin_changes_on_one_gateway_reach_the_other(replicas: Replicas) -> None:
    replicas.settings.update(
        ORCHESTRION_REDIS__URL=REDIS_URL,
        ORCHESTRION_GATEWAY__REGISTRY_PREFIX=f"orn:test:{uuid.uuid4().hex[:8]}:",
    )
    auth = await replicas.serve("auth", "auth")
    # Instances nobody serves: the admin API manages them all the same.
    one, two = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    options = (f"--upstream=auth={auth}", f"--upstream=workflows={one},{two}")
    first = await replicas.gateway("gateway-1", *options)
    second = await replicas.gateway("gateway-2", *options)
    async with (
        httpx.AsyncClient(base_url=first, timeout=30) as a,
        httpx.AsyncClient(base_url=second, timeout=30) as b,
    ):
        b.headers["Authorization"] = f"Bearer {await sign_in(a)}"
        instances = await _instances(b)
        assert [i["draining"] for i in instances.values()] == [False, False]
        drained = next(i["id"] for i in instances.values() if i["url"] == one)

        # Drained on the first gateway: the second drains it too.
        response = await a.post(f"/admin/upstreams/workflows/instances/{drained}/drain")
        assert response.status_code == 200, response.text
        await _until(b, lambda found: found[drained]["draining"] is True, "drain")

        # A weight set on the second: the first follows.
        other = next(i for i in instances if i != drained)
        response = await b.patch(
            f"/admin/upstreams/workflows/instances/{other}", json={"weight": 7}
        )
        assert response.status_code == 200, response.text
        await _until(a, lambda found: found[other]["weight"] == 7, "weight")
        assert (await _instances(a))[drained]["draining"] is True

        # An instance added by hand on the first shows on the second, and is gone from
        # both once removed on the second.
        three = f"http://127.0.0.1:{free_port()}"
        added = await a.post(
            "/admin/upstreams/workflows/instances", json={"url": three, "weight": 3}
        )
        assert added.status_code == 201, added.text
        new = added.json()["id"]
        await _until(b, lambda found: new in found and found[new]["source"] == "admin", "add")
        assert (await _instances(b))[new]["weight"] == 3
        removed = await b.delete(f"/admin/upstreams/workflows/instances/{new}")
        assert removed.status_code == 204, removed.text
        await _until(a, lambda found: new not in found, "remove")

        # Undrained on the second: both route to it again.
        response = await b.patch(
            f"/admin/upstreams/workflows/instances/{drained}", json={"draining": False}
        )
        assert response.status_code == 200, response.text
        await _until(a, lambda found: found[drained]["draining"] is False, "undrain")


async def _instances(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    listed = await http.get("/admin/upstreams")
    assert listed.status_code == 200, listed.text
    workflows = next(u for u in listed.json()["data"] if u["name"] == "workflows")
    return {i["id"]: i for i in workflows["instances"]}


async def _until(
    http: httpx.AsyncClient, holds: Callable[[dict[str, dict[str, Any]]], bool], what: str
) -> None:
    started = time.monotonic()
    while True:
        found = await _instances(http)
        if holds(found):
            print(f"{what}: applied by the other gateway in {time.monotonic() - started:.3f} s")
            return
        if time.monotonic() - started > PATIENCE:
            pytest.fail(f"{what} never reached the other gateway: {found}")
        await asyncio.sleep(0.05)
