"""Errors of the auth service."""

from orchestrion.kernel.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)


class InvalidCredentials(Unauthenticated):
    """Wrong email or password (never says which)."""


class InvalidRefreshToken(Unauthenticated):
    """The refresh token is unknown, expired, revoked or reused."""


class LoginThrottled(TooManyRequests):
    """Too many failed logins for this account or address."""


class TenantNotFound(NotFound):
    """No such tenant visible to the caller."""


class UserNotFound(NotFound):
    """No such user visible to the caller."""


class ApiKeyNotFound(NotFound):
    """No such API key visible to the caller."""


class EmailTaken(Conflict):
    """Another user has this email."""


class TenantExists(Conflict):
    """Another tenant has this name."""


class InvalidUser(ValidationFailed):
    """Bad roles, email or password."""


class NotPlatformAdmin(Forbidden):
    """Only platform administrators may do this."""


class PrivilegeEscalation(Forbidden):
    """The target (a user, a role, an API key) holds more power than the caller."""

    title = "Privilege Escalation"


class WeakPassword(ValidationFailed):
    """The password breaks the password policy (too short, common, guessable)."""

    title = "Weak Password"


class SelfLockout(Conflict):
    """An admin may not remove their own admin rights or account."""
