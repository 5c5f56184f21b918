"""Errors of the flags service.

Exception tree::

    NotFound (404)
    └── FlagNotFound           no such flag in the tenant
    Conflict (409)
    └── FlagExists             the tenant already has a flag with that key
    Forbidden (403)
    └── NotPlatformAdmin       managing flags is for platform administrators
    ValidationFailed (422)
    └── InvalidFlag            variants and rules that do not fit together
"""

from orchestrion.kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class FlagNotFound(NotFound):
    """No such flag visible to the caller."""


class FlagExists(Conflict):
    """The tenant already has a flag with that key."""


class NotPlatformAdmin(Forbidden):
    """Creating, changing or deleting flags needs a platform administrator."""


class InvalidFlag(ValidationFailed):
    """Variants or rules that do not fit together (the error names the field)."""
