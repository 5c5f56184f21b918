"""A durable task queue on the platform's database (see :mod:`.queue`)."""

from orchestrion.kernel.queue.models import Task
from orchestrion.kernel.queue.queue import PARKED, ClaimedTask, TaskQueue

__all__ = ["PARKED", "ClaimedTask", "Task", "TaskQueue"]
