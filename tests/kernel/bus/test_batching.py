"""The coalescer that shares broker round trips between calls made at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orchestrion.kernel.bus.batching import Coalescer


class Doubler:
    """A flush that doubles numbers, refuses negative ones, and records each batch."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("broker gone")
        return [ValueError(f"negative: {n}") if n < 0 else n * 2 for n in items]


async def test_calls_of_one_turn_share_one_flush_and_get_their_own_results() -> None:
    flush = Doubler()
    coalescer = Coalescer(flush)

    results = await asyncio.gather(*(coalescer.submit(n) for n in range(10)))

    assert results == [n * 2 for n in range(10)]
    assert flush.batches == [list(range(10))]


async def test_a_lone_call_goes_out_without_waiting_for_company() -> None:
    flush = Doubler()
    coalescer = Coalescer(flush)

    assert await coalescer.submit(1) == 2
    assert await coalescer.submit(2) == 4
    assert flush.batches == [[1], [2]]


async def test_each_caller_sees_its_own_error_only() -> None:
    coalescer = Coalescer(Doubler())

    outcomes = await asyncio.gather(
        coalescer.submit(1), coalescer.submit(-1), coalescer.submit(3), return_exceptions=True
    )

    assert outcomes[0] == 2
    assert outcomes[2] == 6
    assert isinstance(outcomes[1], ValueError)


async def test_a_failed_flush_fails_every_caller_of_its_batch() -> None:
    coalescer = Coalescer(Doubler(fail=True))

    outcomes = await asyncio.gather(
        *(coalescer.submit(n) for n in range(3)), return_exceptions=True
    )

    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)


async def test_batches_stop_at_the_limit() -> None:
    flush = Doubler()
    coalescer = Coalescer(flush, limit=4)

    await asyncio.gather(*(coalescer.submit(n) for n in range(10)))

    assert [len(batch) for batch in flush.batches] == [4, 4, 2]


async def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    flush = Doubler()
    flush.gate.clear()
    coalescer = Coalescer(flush)
    quitter = asyncio.create_task(coalescer.submit(1))
    stayer = asyncio.create_task(coalescer.submit(2))
    await asyncio.sleep(0.01)  # both are in the batch in flight

    quitter.cancel()
    flush.gate.set()

    assert await stayer == 4
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert flush.batches == [[1, 2]]


async def test_close_sends_what_is_pending() -> None:
    flush = Doubler()
    coalescer = Coalescer(flush)
    waiting = asyncio.create_task(coalescer.submit(5))
    await asyncio.sleep(0)

    await coalescer.aclose()

    assert await waiting == 10
