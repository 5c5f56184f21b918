"""Errors of the workflows service, shared by its sub-packages.

Exception tree (bases from :mod:`orchestrion.kernel.errors`)::

    BadRequest (400)
    ├── UnreadableBody
    └── ValidationFailed (422)
        └── InvalidDefinition
    Unauthenticated (401)
    └── InvalidSignature
    NotFound (404)
    ├── WorkflowNotFound
    ├── VersionNotFound
    ├── ExecutionNotFound
    ├── ScheduleNotFound
    ├── TriggerNotFound
    ├── LlmProviderNotFound
    ├── BudgetNotFound
    └── McpServerNotFound
    Conflict (409)
    └── BudgetExceededProblem
"""

from orchestrion.kernel.errors import (
    BadRequest,
    Conflict,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)


class WorkflowNotFound(NotFound):
    """No such workflow in the caller's tenant."""


class VersionNotFound(NotFound):
    """The workflow has no such version."""


class InvalidDefinition(ValidationFailed):
    """The definition breaks a rule; ``errors`` name the steps."""


class UnreadableBody(BadRequest):
    """The body is neither JSON nor YAML, or not an object."""


class ExecutionNotFound(NotFound):
    """No such execution in the caller's tenant."""


class ScheduleNotFound(NotFound):
    """No such schedule on this workflow."""


class TriggerNotFound(NotFound):
    """No such webhook trigger."""


class InvalidSignature(Unauthenticated):
    """The webhook's signature, timestamp or id is missing or wrong."""


class LlmProviderNotFound(NotFound):
    """No such LLM provider in the caller's tenant."""


class BudgetNotFound(NotFound):
    """No such budget in the caller's tenant."""


class BudgetExceededProblem(Conflict):
    """A run would spend more than a budget allows."""

    title = "Budget exceeded"


class McpServerNotFound(NotFound):
    """No MCP server of that name in the caller's tenant."""
