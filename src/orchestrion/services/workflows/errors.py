"""Errors of the workflows service, shared by its sub-packages.

Exception tree (bases from :mod:`orchestrion.kernel.errors`)::

    BadRequest (400)
    ├── UnreadableBody
    └── ValidationFailed (422)
        └── InvalidDefinition
    NotFound (404)
    ├── WorkflowNotFound
    ├── VersionNotFound
    ├── ExecutionNotFound
    ├── LlmProviderNotFound
    └── BudgetNotFound
    Conflict (409)
    └── BudgetExceededProblem
"""

from orchestrion.kernel.errors import BadRequest, Conflict, NotFound, ValidationFailed


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


class LlmProviderNotFound(NotFound):
    """No such LLM provider in the caller's tenant."""


class BudgetNotFound(NotFound):
    """No such budget in the caller's tenant."""


class BudgetExceededProblem(Conflict):
    """A run would spend more than a budget allows."""

    title = "Budget exceeded"
