"""The ``flag`` step evaluates a flag for the execution, through the flags service: the
rollout, variants and kill switch apply; a ``default`` answers for a flag the tenant lacks."""

from __future__ import annotations

from typing import Any

import httpx

from tests.services.flags.conftest import Headers
from tests.services.flags.test_api import create
from tests.services.workflows.helpers import run, step


def _flag(key: str, **extra: Any) -> dict[str, Any]:
    return {"id": "check", "type": "flag", "with": {"key": key, **extra}}


async def test_a_flag_step_follows_the_rollout_variants_and_kill_switch(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    await create(
        client,
        admin_headers,
        key="checkout-v2",
        enabled=True,
        rollout=100,
        variants=[{"name": "blue", "weight": 1}, {"name": "green", "weight": 1}],
    )
    steps = [
        _flag("{{ inputs.key }}"),
        {
            "id": "path",
            "type": "transform",
            "needs": ["check"],
            "with": {"on": "{{ steps.check.output.enabled }}"},
        },
    ]
    execution = await run(client, admin_headers, steps, {"key": "checkout-v2"})
    assert execution["status"] == "succeeded", execution
    output = step(execution, "check")["output"]
    assert output["key"] == "checkout-v2"
    assert output["enabled"] is True
    assert output["variant"] in ("blue", "green")
    assert step(execution, "path")["output"] == {"on": True}

    async def change(**body: Any) -> None:
        response = await client.patch("/api/v1/flags/checkout-v2", json=body, headers=admin_headers)
        assert response.status_code == 200, response.text

    await change(rollout=0)  # nobody in the rollout
    assert step(await run(client, admin_headers, [_flag("checkout-v2")]), "check")["output"] == {
        "key": "checkout-v2",
        "enabled": False,
        "variant": None,
    }
    await change(rollout=100, enabled=False)  # the kill switch wins over the rollout
    killed = await run(client, admin_headers, [_flag("checkout-v2")])
    assert step(killed, "check")["output"]["enabled"] is False


async def test_a_missing_flag_takes_the_default_or_fails_for_good(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    defaulted = await run(
        client, admin_headers, [_flag("nobody-made-me", default={"enabled": True})]
    )
    assert defaulted["status"] == "succeeded", defaulted
    assert step(defaulted, "check")["output"] == {
        "key": "nobody-made-me",
        "enabled": True,
        "variant": None,
    }
    failed = await run(client, admin_headers, [_flag("nobody-made-me")])
    assert failed["status"] == "failed", failed
    assert step(failed, "check")["attempts"] == 1
    assert "404" in step(failed, "check")["error"]["message"]
