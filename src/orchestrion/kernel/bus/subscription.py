"""One member of a consumer group: a fetch loop and the handlers it runs.

Backends subclass :class:`Subscription` with the broker's fetch loop (``_loop``) and
its clean-up (``_close``); this class keeps the loop alive across broker hiccups,
bounds concurrent handlers, and stops them in order.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

logger = logging.getLogger("orchestrion.bus")
# Pause before restarting a fetch loop that failed (broker restart, network blip).
LOOP_RESTART_DELAY = 1.0


class Subscription(ABC):
    """A member of ``group`` on ``topic``; ``stop()`` leaves the group's work to others."""

    def __init__(self, *, topic: str, group: str, concurrency: int) -> None:
        self.topic = topic
        self.group = group
        self.concurrency = concurrency
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopped = False
        self._stop_callbacks: list[Callable[[Subscription], object]] = []

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped

    def on_stop(self, callback: Callable[[Subscription], object]) -> None:
        """Call ``callback(self)`` once the subscription has stopped."""
        self._stop_callbacks.append(callback)

    def _launch(self) -> None:
        self._runner = asyncio.create_task(
            self._keep_running(), name=f"bus:{self.topic}:{self.group}"
        )

    async def _keep_running(self) -> None:
        while not self._stopped:
            try:
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("bus consumer %s/%s failed; restarting", self.topic, self.group)
                await asyncio.sleep(LOOP_RESTART_DELAY)

    async def _free_slots(self) -> int:
        """Wait until a handler slot is free; how many are free.

        Fetch loops ask the broker for this many events only, so no event waits in
        this process unrenewed while the broker's ack timer runs.
        """
        while len(self._inflight) >= self.concurrency:
            await asyncio.wait(set(self._inflight), return_when=asyncio.FIRST_COMPLETED)
        return self.concurrency - len(self._inflight)

    async def _dispatch(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` once a handler slot is free (the fetch loop waits for one)."""
        if len(self._inflight) >= self.concurrency:
            await self._free_slots()
        task = asyncio.create_task(self._run_one(work))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run_one(self, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The delivery stays un-acknowledged, so the broker hands it out again.
            logger.exception(
                "bus delivery on %s/%s failed; left for redelivery", self.topic, self.group
            )

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop fetching; give in-flight handlers ``grace`` seconds, then cancel them.

        Cancelled handlers leave their events un-acknowledged: the broker redelivers
        them to another member, exactly as if this process had died.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._runner is not None:
            # Client libraries can swallow a cancellation that lands mid-call (redis-py
            # retries a read it sees interrupted), so cancel again until the loop ends;
            # fetch loops also check ``stopped`` between calls.
            while not self._runner.done():
                self._runner.cancel()
                await asyncio.wait([self._runner], timeout=0.5)
        if self._inflight:
            pending = set(self._inflight)
            if grace > 0:
                _, pending = await asyncio.wait(pending, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self._close()
        finally:
            for callback in self._stop_callbacks:
                callback(self)

    @abstractmethod
    async def _loop(self) -> None:
        """Fetch deliveries and ``_dispatch`` them until cancelled (each backend's own)."""

    async def _close(self) -> None:
        """Release broker resources of this member (backends override when needed)."""
        return  # nothing to release by default
