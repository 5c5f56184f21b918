"""Token chunks batched onto the bus: merged per step in order, never blocking a step."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from orchestrion.kernel.bus import CloudEvent, open_bus
from orchestrion.kernel.ids import utcnow
from orchestrion.services.workflows.llm.token_bus import (
    CHUNK_TOPIC,
    CHUNK_TYPE,
    TokenBatcher,
    TokenFeed,
    chunks_of,
    subscribe_tokens,
)


async def test_chunks_are_merged_per_step_in_order_and_fed_to_watchers() -> None:
    async with open_bus("memory://") as bus:
        fed: list[tuple[str, dict[str, object]]] = []
        events: list[CloudEvent] = []

        async def handler(event: CloudEvent) -> None:
            events.append(event)
            await TokenFeed(lambda execution, token: fed.append((execution, token)), None)(event)

        await subscribe_tokens(bus, "g", handler)
        batcher = TokenBatcher(bus, interval=5.0)  # only a flush sends
        batcher.start()
        for text in ("Hel", "lo"):
            batcher.offer("t1", "e1", "draft", None, text)
            batcher.offer("t1", "e2", "fan", 3, text.upper())
        batcher.offer("t1", "e1", "draft", None, "!")
        batcher.flush()
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.02)
        await batcher.stop()
    assert len(events) == 1  # one bus event for the whole batch
    assert events[0].type == CHUNK_TYPE
    assert fed == [
        ("e1", {"step_id": "draft", "text": "Hello!"}),
        ("e2", {"step_id": "fan", "text": "HELLO", "index": 3}),
    ]


async def test_enough_characters_flush_before_the_interval() -> None:
    async with open_bus("memory://") as bus:
        got: list[CloudEvent] = []

        async def handler(event: CloudEvent) -> None:
            got.append(event)

        await subscribe_tokens(bus, "g", handler)
        batcher = TokenBatcher(bus, interval=30.0, max_chars=10)
        batcher.start()
        batcher.offer("t", "e", "s", None, "x" * 12)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        await batcher.stop()
    assert [c["text"] for c in chunks_of(got[0])] == ["x" * 12]


async def test_a_full_queue_drops_chunks_without_blocking_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = open_bus("memory://")
    batcher = TokenBatcher(bus, queue_size=3)  # not started: nothing drains the queue
    with caplog.at_level(logging.WARNING, "orchestrion.workflows.tokens"):
        for i in range(10):
            batcher.offer("t", "e", "s", None, str(i))
    assert batcher.queue.qsize() == 3
    assert batcher.dropped == 7
    assert len([r for r in caplog.records if "falling behind" in r.message]) == 1


async def test_an_unreachable_broker_loses_tokens_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Redis bus that never connected: every publish fails at once.
    bus = open_bus("redis://127.0.0.1:1/0")
    batcher = TokenBatcher(bus, interval=0.01)
    batcher.start()
    with caplog.at_level(logging.WARNING, "orchestrion.workflows.tokens"):
        for round_ in range(3):
            batcher.offer("t", "e", "s", None, f"chunk {round_}")
            batcher.flush()
            for _ in range(100):
                if batcher.dropped > round_:
                    break
                await asyncio.sleep(0.01)
    await batcher.stop()
    assert batcher.dropped == 3
    assert batcher.published == 0
    assert len([r for r in caplog.records if "could not be published" in r.message]) == 1


def test_stale_and_own_batches_are_skipped() -> None:
    chunk = {"tenant_id": "t", "execution_id": "e", "step_id": "s", "text": "hi"}
    fresh = CloudEvent(source="x", type=CHUNK_TYPE, data={"origin": "me", "chunks": [chunk]})
    assert chunks_of(fresh) == [chunk]
    assert chunks_of(fresh, skip_origin="me") == []
    assert chunks_of(fresh, skip_origin="other") == [chunk]
    old = CloudEvent(
        source="x",
        type=CHUNK_TYPE,
        data={"chunks": [chunk]},
        time=utcnow() - timedelta(minutes=5),
    )
    assert chunks_of(old) == []
    broken = CloudEvent(source="x", type=CHUNK_TYPE, data={"chunks": [{"text": 1}, "no"]})
    assert chunks_of(broken) == []
    assert CHUNK_TOPIC == "workflows.tokens"
