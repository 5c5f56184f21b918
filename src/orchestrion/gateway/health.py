"""Aggregated health: the gateway asks every service and summarises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from orchestrion.gateway.upstream import Upstream

_TIMEOUT_SECONDS = 3.0


async def _probe(upstream: Upstream) -> dict[str, Any]:
    """The service's own health, plus the gateway's view of it (breaker, instances)."""
    result = await _ask(upstream)
    describe = getattr(upstream, "describe", None)
    if describe is not None:
        result["gateway"] = describe()
    return result


async def _ask(upstream: Upstream) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        response = await asyncio.wait_for(upstream.client.get("/health"), _TIMEOUT_SECONDS)
        body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
        status = body.get("status", "ok") if response.status_code == 200 else "down"
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}
    return {
        "status": status,
        "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        **{k: v for k, v in body.items() if k != "status"},
    }


async def aggregate(upstreams: Mapping[str, Upstream]) -> dict[str, Any]:
    """``{"status": ok|degraded|down, "services": {...}}`` as API.md describes."""
    names = sorted(upstreams)
    results = await asyncio.gather(*(_probe(upstreams[n]) for n in names))
    services = dict(zip(names, results, strict=True))
    statuses = {s["status"] for s in services.values()}
    if statuses <= {"ok"}:
        overall = "ok"
    elif statuses == {"down"}:
        overall = "down"
    else:
        overall = "degraded"
    return {"status": overall, "services": services}
