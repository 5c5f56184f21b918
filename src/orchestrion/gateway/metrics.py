"""The gateway's own metrics: per upstream service, beside the per-route HTTP metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from orchestrion.gateway.policies.breaker import STATE_VALUES

UPSTREAM_LATENCY = Histogram(
    "orchestrion_gateway_upstream_duration_seconds",
    "Time from sending a request to a service to the end of its answer, by upstream.",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UPSTREAM_RETRIES = Counter(
    "orchestrion_gateway_upstream_retries_total",
    "Requests sent again to another instance, by upstream.",
    ["upstream"],
)
BREAKER_STATE = Gauge(
    "orchestrion_gateway_breaker_state",
    "Circuit breaker state by upstream: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
)
BREAKER_OPENED = Gauge(
    "orchestrion_gateway_breaker_opened",
    "Times the upstream's breaker opened since the gateway started.",
    ["upstream"],
)
CONFIG_RELOADS = Counter(
    "orchestrion_gateway_config_reloads_total",
    "Configuration file loads, by result (ok, failed).",
    ["result"],
)
WEBSOCKETS = Gauge(
    "orchestrion_gateway_websocket_connections",
    "WebSocket connections open through the gateway now, by upstream.",
    ["upstream"],
)
INSTANCES = Gauge(
    "orchestrion_gateway_upstream_instances",
    "Instances of an upstream that take requests now.",
    ["upstream"],
)


def refresh(upstreams: Mapping[str, Any]) -> None:
    """Set the gauges from the live upstreams (called when ``/metrics`` is scraped)."""
    for name, upstream in upstreams.items():
        breaker = getattr(upstream, "breaker", None)
        if breaker is None:
            continue
        BREAKER_STATE.labels(name).set(STATE_VALUES[breaker.state])
        BREAKER_OPENED.labels(name).set(breaker.opened_count)
        described = upstream.describe()["instances"]
        INSTANCES.labels(name).set(
            sum(1 for i in described if i["healthy"] and not i["ejected"] and not i["draining"])
        )
