"""Errors of the templates service.

Exception tree::

    NotFound (404)
    └── TemplateNotFound           no such template, or one the caller may not see
    Forbidden (403)
    └── NotTemplateOwner           a template the caller sees but its tenant does not own
    ValidationFailed (422)
    ├── InvalidTemplate            a parameters schema or definition that cannot work
    ├── InvalidParameters          parameters failing the template's schema (names each)
    └── WorkflowRejected           the workflows service refused the instantiated definition
    ServiceUnavailable (503)
    └── WorkflowsUnreachable       the workflows service could not be reached
    UpstreamError (502)
    └── WorkflowsFailed            the workflows service answered something unexpected
"""

from orchestrion.kernel.errors import (
    Forbidden,
    NotFound,
    ServiceUnavailable,
    UpstreamError,
    ValidationFailed,
)


class TemplateNotFound(NotFound):
    """No such template visible to the caller (another tenant's private one is None too)."""


class NotTemplateOwner(Forbidden):
    """Only the tenant that owns a template changes it; starters belong to the platform."""

    title = "Not the template's owner"


class InvalidTemplate(ValidationFailed):
    """The parameters schema is not a JSON Schema, or the definition names a parameter
    the schema does not declare."""


class InvalidParameters(ValidationFailed):
    """Parameters that fail the template's schema."""


class WorkflowRejected(ValidationFailed):
    """The workflows service found the instantiated definition invalid."""


class WorkflowsUnreachable(ServiceUnavailable):
    """The workflows service cannot be reached from this process."""


class WorkflowsFailed(UpstreamError):
    """The workflows service answered with an error this service cannot pass on as its own."""
