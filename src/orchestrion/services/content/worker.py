"""Process large documents off the request path, from the task queue.

Each content service process runs a :class:`ContentWorker`: it claims tasks of the
``content`` queue, processes their documents and completes the task in the same
transaction as the outcome, so a crash leaves the task to be claimed again. A document
whose processing kills its worker every time is given up after ``MAX_ATTEMPTS``
deliveries: the dead-lettered task marks it ``failed``.
"""

from __future__ import annotations

import logging

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.queue import ClaimedTask, DeadLetter
from orchestrion.kernel.queue.worker import QueueWorker
from orchestrion.services.content import repository, service
from orchestrion.services.content.errors import UnreadableDocument
from orchestrion.services.content.service import QUEUE, ContentRuntime

logger = logging.getLogger("orchestrion.content.worker")
MAX_ATTEMPTS = 3


class ContentWorker(QueueWorker):
    """Claims and processes up to ``concurrency`` documents at a time until stopped."""

    def __init__(
        self,
        database: Database,
        runtime: ContentRuntime,
        *,
        concurrency: int = 2,
        poll_seconds: float = 1.0,
    ) -> None:
        super().__init__(runtime.queue, QUEUE, concurrency=concurrency, poll_seconds=poll_seconds)
        self.database = database
        self.runtime = runtime

    async def handle(self, task: ClaimedTask) -> None:
        """Process the task's document and complete the task with its outcome."""
        document_id = str(task.payload.get("document_id", ""))
        try:
            async with self.database.session() as session:
                document = await repository.get_for_processing(session, document_id=document_id)
                pending = document is not None and document.status == "processing"
                data, content_type = (
                    (document.data, document.content_type) if document is not None else (b"", "")
                )
            outcome: service.Processed | str | None = None
            if pending:
                try:
                    outcome = await service.prepare(self.runtime, data, content_type)
                except UnreadableDocument as exc:
                    outcome = exc.detail
            async with self.database.session() as session:
                document = await repository.get_for_processing(session, document_id=document_id)
                if outcome is not None and document is not None and document.status == "processing":
                    if isinstance(outcome, str):
                        service.fail(session, document=document, reason=outcome)
                    else:
                        await service.store(session, document=document, processed=outcome)
                if not await self.runtime.queue.complete(
                    session, task_id=task.id, owner=self.owner
                ):
                    # Another worker holds it now: let its outcome stand, not ours.
                    await session.rollback()
        except Exception:
            # The lease runs out and the task is claimed again (at most MAX_ATTEMPTS).
            logger.exception("processing content %s failed", document_id)


async def give_up(database: Database, letters: list[DeadLetter]) -> None:
    """Mark the documents of dead-lettered tasks ``failed``."""
    async with database.session() as session:
        for letter in letters:
            document_id = str(letter.payload.get("document_id", ""))
            document = await repository.get_for_processing(session, document_id=document_id)
            if document is not None and document.status == "processing":
                service.fail(
                    session,
                    document=document,
                    reason=f"processing failed {letter.attempts} times; giving up",
                )
