"""Garbage-collector tuning for long-running server processes."""

from __future__ import annotations

import gc

_tuned = False


def tune_collector() -> None:
    """Keep collector pauses off the request path (measured by bench/realtime.py and
    bench/gateway.py).

    Everything alive after start-up (modules, apps, settings) lives as long as the
    process, so it is frozen out of the collector's sight; and serving allocates a few
    objects per request or socket, so collections are made rarer. Without this, full
    collections walking every object stall the whole process for 100+ ms every few
    seconds under load. Process-wide, hence once per process, and not under tests.
    """
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()  # garbage frozen now would never be freed
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 50_000), max(gen1, 20), max(gen2, 100))
