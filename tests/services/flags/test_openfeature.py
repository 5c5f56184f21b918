"""``flags.changed`` on the bus, and the OpenFeature provider evaluating through
``api.get_client()`` (asynchronously in process, synchronously over loopback HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from orchestrion.kernel.bus import Bus, CloudEvent
from orchestrion.platform import create_embedded_app
from orchestrion.services.flags.openfeature import OrchestrionProvider
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.fixtures.servers import serve
from tests.services.flags.conftest import Headers

FLAGS = "/api/v1/flags"


def token(headers: Headers) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def openfeature_api() -> Any:
    """The OpenFeature API, with no provider left behind."""
    yield api
    api.clear_providers()
    api.clear_hooks()


async def test_changes_are_published_on_the_bus(
    bus: Bus, client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    events: asyncio.Queue[CloudEvent] = asyncio.Queue()

    async def handler(event: CloudEvent) -> None:
        await events.put(event)

    subscription = await bus.subscribe("flags.changed", "flags-test", handler)
    try:
        created = await client.post(
            FLAGS, json={"key": "k", "enabled": True}, headers=admin_headers
        )
        assert created.status_code == 201
        changed = await client.patch(f"{FLAGS}/k", json={"enabled": False}, headers=admin_headers)
        assert changed.status_code == 200
        same = await client.patch(f"{FLAGS}/k", json={"enabled": False}, headers=admin_headers)
        assert same.json()["version"] == 2
        assert (await client.delete(f"{FLAGS}/k", headers=admin_headers)).status_code == 204
        received = [await asyncio.wait_for(events.get(), 10) for _ in range(3)]
    finally:
        await subscription.stop()
    assert [(e.type, e.data["action"], e.data["version"]) for e in received] == [
        ("orchestrion.flag.created", "created", 1),
        ("orchestrion.flag.updated", "updated", 2),
        ("orchestrion.flag.deleted", "deleted", 3),
    ]
    first = received[0]
    assert first.source == "orchestrion/flags"
    assert first.subject == "flags/k"
    assert first.data["key"] == "k"
    assert first.data["tenant_id"]
    # An unchanged PATCH publishes nothing.
    assert events.empty()


async def test_the_provider_resolves_caches_and_hears_changes(
    bus: Bus,
    client: httpx.AsyncClient,
    admin_headers: Headers,
    viewer: Headers,
    openfeature_api: Any,
) -> None:
    variants = [{"name": "blue", "weight": 1}, {"name": "green", "weight": 1}]
    body = {"key": "theme", "enabled": True, "rollout": 100, "variants": variants}
    assert (await client.post(FLAGS, json=body, headers=admin_headers)).status_code == 201
    expected = (await client.get(f"{FLAGS}/theme/evaluate", headers=viewer)).json()
    provider = OrchestrionProvider(token=token(viewer), ttl=300, client=client)
    changes: asyncio.Queue[EventDetails] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    await provider.listen(bus)
    try:
        openfeature_api.set_provider(provider)
        openfeature_api.add_handler(
            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
            lambda details: loop.call_soon_threadsafe(changes.put_nowait, details),
        )
        features = openfeature_api.get_client()
        details = await features.get_boolean_details_async("theme", False)
        assert (details.value, details.reason, details.variant) == (
            True,
            "SPLIT",
            expected["variant"],
        )
        colour = await features.get_string_details_async("theme", "none")
        assert (colour.value, colour.reason) == (expected["variant"], Reason.CACHED)
        assert colour.flag_metadata == {"version": 1}
        # Kill switch: the event drops the cached answer, the next evaluation is off.
        killed = await client.patch(
            f"{FLAGS}/theme", json={"enabled": False}, headers=admin_headers
        )
        assert killed.status_code == 200
        heard = await asyncio.wait_for(changes.get(), 10)
        assert heard.flags_changed == ["theme"]
        off = await features.get_boolean_details_async("theme", True)
        assert (off.value, off.reason) == (False, "DISABLED")
        assert await features.get_string_value_async("theme", "none") == "none"
        # Another principal's token in the context; errors answer the default.
        as_admin = EvaluationContext(attributes={"token": token(admin_headers)})
        assert await features.get_boolean_value_async("theme", True, as_admin) is False
        missing = await features.get_boolean_details_async("nope", True)
        assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
        anonymous = EvaluationContext(attributes={"token": "not-a-token"})
        refused = await features.get_boolean_details_async("theme", True, anonymous)
        assert (refused.value, refused.error_code) == (True, ErrorCode.INVALID_CONTEXT)
        mismatch = await features.get_integer_details_async("theme", 7)
        assert (mismatch.value, mismatch.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    finally:
        await provider.aclose()


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[str]:
    """The platform on a loopback port (its lifespan running), for the blocking client."""
    async with serve(create_embedded_app(settings)) as hostport:
        yield f"http://{hostport}"


async def test_the_provider_resolves_synchronously(served: str, openfeature_api: Any) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=60) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        made = await http.post(
            FLAGS, json={"key": "sync", "enabled": True, "rollout": 100}, headers=headers
        )
        assert made.status_code == 201
        provider = OrchestrionProvider(served, token=headers["Authorization"][7:], ttl=0)
        try:
            openfeature_api.set_provider(provider)
            features = openfeature_api.get_client()
            # The blocking client runs in a thread: this loop serves the platform.
            on = await asyncio.to_thread(features.get_boolean_details, "sync", False)
            assert (on.value, on.reason, on.variant) == (True, "SPLIT", "on")
            await http.patch(f"{FLAGS}/sync", json={"enabled": False}, headers=headers)
            off = await asyncio.to_thread(features.get_boolean_value, "sync", True)
            assert off is False
        finally:
            await provider.aclose()
