"""Prometheus metrics of the event bus, the same on every backend.

Topics and groups are names the code declares (``workflows.executions``, ``analytics``),
a closed set, so they are safe labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PUBLISHED = Counter(
    "orchestrion_bus_published_total",
    "Events the broker confirmed, by topic (dead letters on `<topic>.dlq`).",
    ["topic"],
)
CONSUMED = Counter(
    "orchestrion_bus_consumed_total",
    "Deliveries a group member finished with, by topic, group and result (handled, "
    "duplicate, dead_lettered, malformed).",
    ["topic", "group", "result"],
)
DEAD_LETTERS = Counter(
    "orchestrion_bus_dead_letters_total",
    "Events a group gave up on and sent to `<topic>.dlq`, by topic and group.",
    ["topic", "group"],
)
LAG = Histogram(
    "orchestrion_bus_consume_lag_seconds",
    "Time from an event's `time` to a member of the group starting to handle it, by "
    "topic and group.",
    ["topic", "group"],
    buckets=(
        0.001,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
        60.0,
        300.0,
    ),
)
