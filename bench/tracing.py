"""Tracing off: what each tracing hook adds per call, against the same work without it.

Run: ``.venv/bin/python -m bench.tracing [--repeats 40] [--number 20000]``.

End-to-end benches (``bench.engine``, ``bench.gateway``) move by more between two runs
on a shared machine than these hooks could add, so the hooks are measured directly:
each row times the hook and its baseline alternately, ``--repeats`` times ``--number``
calls each, and keeps the minimum of each (the run least disturbed by other processes).
The environment's ``OTEL_*`` variables are ignored: tracing stays off.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import timeit
from collections.abc import Callable
from typing import Any

from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.queue.queue import ClaimedTask, _enqueue_attributes, task_span

Call = Callable[[], Any]


def _nothing() -> None:
    pass


def _span() -> None:
    with tracing.span("step x"):
        pass


def _enqueue() -> None:
    with tracing.span("enqueue q", attributes=_enqueue_attributes("q", "t", "run")) as span:
        tracing.traceparent(span)


_TASK = ClaimedTask(
    id="t",
    queue="q",
    key=None,
    payload={"kind": "run", "execution_id": "e", "step_id": "s"},
    attempts=1,
    lease_expires_at=utcnow(),
)


def _task_span() -> None:
    with task_span(_TASK, "q"):
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


_MIDDLEWARE = tracing.TracingMiddleware(_app)
_SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": []}


def _drive(coroutine: Any) -> None:
    with contextlib.suppress(StopIteration):
        coroutine.send(None)


def rows() -> list[tuple[str, Call, Call, int]]:
    """(name, hook, baseline, calls per timing)."""
    return [
        ("TracingMiddleware, per request", lambda: _drive(_MIDDLEWARE(_SCOPE, None, None)),
         lambda: _drive(_app(_SCOPE, None, None)), 1),
        ("span(): step or upstream attempt", _span, _nothing, 1),
        ("enqueue hook, per task enqueued", _enqueue, _nothing, 1),
        ("task_span, per task claimed (log ids)", _task_span, _nothing, 1),
        ("CloudEvent() with its default traceparent",
         lambda: CloudEvent(source="/s", type="t.x"),
         lambda: CloudEvent(source="/s", type="t.x", traceparent=None), 4),
        ("add_trace_ids, per log line", lambda: tracing.add_trace_ids(None, "", {}), _nothing, 1),
    ]  # fmt: skip


def measure(hook: Call, base: Call, *, number: int, repeats: int) -> tuple[float, float]:
    """Min seconds per call of ``hook`` and of ``base``, timed alternately."""
    best_hook = best_base = float("inf")
    for _ in range(repeats):
        best_hook = min(best_hook, timeit.timeit(hook, number=number) / number)
        best_base = min(best_base, timeit.timeit(base, number=number) / number)
    return best_hook, best_base


def main(argv: list[str] | None = None) -> None:
    """Print the table and the command line that produced it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args(argv)
    tracing.shutdown_tracing()  # off, whatever a caller set up
    print(f"$ python -m bench.tracing {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"{'hook (tracing off)':45s} {'added ns':>9s} {'hook ns':>9s} {'base ns':>9s}")
    print("-" * 75)
    for name, hook, base, slower in rows():
        number = max(1, args.number // slower)
        with_hook, without = measure(hook, base, number=number, repeats=args.repeats)
        added = (with_hook - without) * 1e9
        print(f"{name:45s} {added:9.0f} {with_hook * 1e9:9.0f} {without * 1e9:9.0f}")


if __name__ == "__main__":
    main()
