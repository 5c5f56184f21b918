"""Garbage-collector tuning for long-running server processes."""

from __future__ import annotations

import gc

_tuned = False


def pause_collector() -> None:
    """No collections while the process starts (``orchestrion up``).

    Start-up builds a few hundred thousand objects that live as long as the process;
    the collector's passes over them as they pile up cost ~0.7 s of CPU at every start,
    and find next to nothing (a few thousand objects). :func:`resume_collector` turns
    collections back on once the app is built.
    """
    gc.disable()


def resume_collector() -> None:
    """Collections again, past the objects start-up built: they are frozen out of the
    collector's sight (:func:`tune_collector` collects them once when the server runs)."""
    gc.freeze()
    gc.enable()


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
    gc.unfreeze()  # start-up's garbage, frozen by resume_collector(), is freed now
    gc.collect()  # garbage frozen now would never be freed
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 50_000), max(gen1, 20), max(gen2, 100))
