"""The durable runtime: executions started, their steps run and recorded, controlled.

:class:`Engine` is what a process holds; the rest is split by concern (see each module).
"""

from orchestrion.engine.runtime.engine import Engine, EngineTaskHandler
from orchestrion.engine.runtime.parts import EventListener, WorkflowResolver
from orchestrion.engine.runtime.starting import schema_errors
from orchestrion.engine.runtime.steps import Prepared

__all__ = [
    "Engine",
    "EngineTaskHandler",
    "EventListener",
    "Prepared",
    "WorkflowResolver",
    "schema_errors",
]
