"""``http`` steps against a real loopback upstream: the body cap and the guarded connection."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from orchestrion.engine import (
    HTTP,
    Engine,
    Execution,
    Failed,
    HttpAccess,
    Outcome,
    StepBody,
    Succeeded,
)
from orchestrion.kernel.db.engine import Database
from tests.fixtures.upstream import Upstream


async def _http_step(tmp_path: Path, access: HttpAccess, spec: dict[str, Any]) -> Outcome:
    engine = Engine(Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), resources={HTTP: access})
    call = engine.parts.executor.bind(
        "http",
        execution=Execution(id="e1", tenant_id="t1"),
        step_id="s",
        index=None,
        attempt=1,
        raw_with=spec,
        context={},
    )
    return await engine.parts.executor.run(StepBody(type="http"), call)


async def test_a_body_past_the_cap_fails_the_step(tmp_path: Path, upstream: Upstream) -> None:
    async with httpx.AsyncClient() as client:
        access = HttpAccess(client, ("127.0.0.1",), max_response_bytes=1000)
        small = await _http_step(tmp_path, access, {"url": f"{upstream.url}/blob?size=1000"})
        large = await _http_step(tmp_path, access, {"url": f"{upstream.url}/blob?size=1001"})
    assert isinstance(small, Succeeded)
    assert isinstance(large, Failed)
    assert not large.retryable
    assert "more than 1000 bytes" in large.message
    assert "ORCHESTRION_ENGINE__HTTP_MAX_RESPONSE_BYTES" in large.message


async def test_a_streamed_body_is_cut_off_at_the_cap(tmp_path: Path, upstream: Upstream) -> None:
    """No Content-Length: reading stops once the cap is passed."""
    async with httpx.AsyncClient() as client:
        access = HttpAccess(client, ("127.0.0.1",), max_response_bytes=100_000)
        url = f"{upstream.url}/blob?size=5000000&chunked=1"
        outcome = await _http_step(tmp_path, access, {"url": url})
    assert isinstance(outcome, Failed)
    assert "more than 100000 bytes" in outcome.message


async def test_the_step_connects_to_the_address_it_checked(
    tmp_path: Path, upstream: Upstream
) -> None:
    """The name answers 127.0.0.1 (allow-listed) once, then 127.0.0.2 where nothing listens."""
    answers = ["127.0.0.1", "127.0.0.2"]
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return [answers[min(len(calls), 2) - 1]]

    port = httpx.URL(upstream.url).port
    async with httpx.AsyncClient() as client:
        access = HttpAccess(client, ("127.0.0.1/32",), resolver=rebinding)
        outcome = await _http_step(
            tmp_path, access, {"url": f"http://service.example:{port}/blob?size=10"}
        )
    assert isinstance(outcome, Succeeded), outcome
    assert calls == ["service.example"]


async def test_shared_address_space_is_refused(tmp_path: Path) -> None:
    """100.64.0.0/10 is not private in ``ipaddress``'s sense, yet not public either."""
    async with httpx.AsyncClient() as client:
        outcome = await _http_step(
            tmp_path, HttpAccess(client), {"url": "http://100.100.100.200/latest", "timeout": 2}
        )
    assert isinstance(outcome, Failed)
    assert not outcome.retryable
    assert "not a public address" in outcome.message
