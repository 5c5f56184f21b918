"""A durable task queue on the platform's database (see :mod:`.queue`)."""

from orchestrion.kernel.queue.models import Task
from orchestrion.kernel.queue.queue import (
    DEAD_SUFFIX,
    PARKED,
    ClaimedTask,
    DeadLetter,
    TaskQueue,
    task_span,
)

__all__ = ["DEAD_SUFFIX", "PARKED", "ClaimedTask", "DeadLetter", "Task", "TaskQueue", "task_span"]
