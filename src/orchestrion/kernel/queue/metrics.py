"""Prometheus metrics of the task queues: backlog, dead letters and claim latency.

The backlog is read from the database by the workers (:meth:`TaskQueue.sample_depth`,
every ``DEPTH_INTERVAL`` seconds), so every worker of a deployment reports the same
figure: aggregate it with ``max``, never ``sum``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Seconds between two readings of the queues' depth by a worker.
DEPTH_INTERVAL = 15.0

DEPTH = Gauge(
    "orchestrion_queue_depth",
    "Tasks due now and not leased to a worker (the backlog), by queue; dead letters are "
    "counted under `<queue>.dead`.",
    ["queue"],
)
CLAIM_LATENCY = Histogram(
    "orchestrion_queue_claim_latency_seconds",
    "Time from a task falling due to a worker claiming it for the first time, by queue.",
    ["queue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
DEAD_LETTERED = Counter(
    "orchestrion_queue_dead_lettered_total",
    "Tasks moved to their queue's dead letters after `max_task_attempts` deliveries.",
    ["queue"],
)
