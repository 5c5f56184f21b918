"""A worker of one queue: claim a few tasks, handle them side by side, wait, again.

A service that moves work off the request path (the content service's large documents,
the notifications service's sends) subclasses :class:`QueueWorker` and writes
:meth:`QueueWorker.handle`: complete the task in the transaction that records its
outcome, so a crash leaves it to be claimed again once its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from abc import ABC, abstractmethod

from orchestrion.kernel.ids import new_id
from orchestrion.kernel.queue.queue import ClaimedTask, TaskQueue, task_span

logger = logging.getLogger("orchestrion.queue.worker")


class QueueWorker(ABC):
    """Claims up to ``concurrency`` tasks of ``queue_name`` at a time until stopped."""

    def __init__(
        self,
        queue: TaskQueue,
        queue_name: str,
        *,
        concurrency: int,
        poll_seconds: float,
    ) -> None:
        self.queue = queue
        self.queue_name = queue_name
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{queue_name}:{new_id()[-12:]}"
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def handle(self, task: ClaimedTask) -> None:
        """Do the task and complete it; an exception leaves it to its lease."""

    def idle_seconds(self) -> float:
        """How long to wait for new tasks when none was claimed."""
        return self.poll_seconds

    def start(self) -> None:
        """Run in the background until :meth:`stop`."""
        self._task = asyncio.create_task(self._run(), name=f"{self.queue_name}-worker")

    async def stop(self) -> None:
        """Stop once the tasks in flight are done."""
        self._stopping.set()
        self.queue.wake(self.queue_name)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _handle(self, task: ClaimedTask) -> None:
        with task_span(task, self.queue_name):
            await self.handle(task)

    async def _run(self) -> None:
        # Without notifications (SQLite) the queue is polled: listening is best effort.
        with contextlib.suppress(Exception):
            await self.queue.listen()
        while not self._stopping.is_set():
            try:
                claimed = await self.queue.claim(
                    queue=self.queue_name, owner=self.owner, limit=self.concurrency
                )
            except Exception:
                logger.exception("claiming %s tasks failed; retrying", self.queue_name)
                claimed = []
            if claimed:
                await asyncio.gather(*(self._handle(task) for task in claimed))
                continue
            await self.queue.wait(queue=self.queue_name, seconds=self.idle_seconds())
