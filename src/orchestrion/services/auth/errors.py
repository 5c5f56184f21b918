"""Errors of the auth service.

Single sign-on adds (under the kernel's classes)::

    NotFound ── UnknownProvider (404)
    ValidationFailed ── RedirectNotAllowed (422)
    BadRequest ── InvalidSsoState (400), SsoRefused (400)
    Unauthenticated ── InvalidSsoCode (401), InvalidIdToken (401)
    Forbidden ── EmailNotVerified (403), SsoAccountRefused (403)
    UpstreamError ── IdentityProviderError (502)
        └── ServiceUnavailable ── IdentityProviderUnavailable (503)

A person's data adds::

    ServiceUnavailable ── PersonalDataUnavailable (503)
"""

from orchestrion.kernel.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
    UpstreamError,
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


# --- single sign-on ----------------------------------------------------------------


class UnknownProvider(NotFound):
    """No OpenID Connect provider of that name is configured."""

    title = "Unknown Identity Provider"


class RedirectNotAllowed(ValidationFailed):
    """The frontend's ``redirect_uri`` is not in ``auth.sso_redirect_uris``."""

    title = "Redirect URI Not Allowed"


class InvalidSsoState(BadRequest):
    """The callback's ``state`` is unknown, expired, used, or from another browser."""

    title = "Invalid SSO State"


class SsoRefused(BadRequest):
    """The provider refused to give tokens for the code it issued."""

    title = "SSO Refused"


class InvalidSsoCode(Unauthenticated):
    """The one-time code is unknown, expired or already exchanged."""

    title = "Invalid SSO Code"


class InvalidIdToken(Unauthenticated):
    """The provider's ID token failed validation (signature, issuer, audience, expiry, nonce)."""

    title = "Invalid ID Token"


class EmailNotVerified(Forbidden):
    """The provider does not vouch for the user's email address."""

    title = "Email Not Verified"


class SsoAccountRefused(Forbidden):
    """The matching account is disabled or belongs to another tenant."""

    title = "SSO Account Refused"


class IdentityProviderError(UpstreamError):
    """The provider answered with something unusable."""

    title = "Identity Provider Error"


class IdentityProviderUnavailable(ServiceUnavailable):
    """The provider could not be reached in time."""

    title = "Identity Provider Unavailable"


class PersonalDataUnavailable(ServiceUnavailable):
    """A service holding personal data did not answer its part of an export."""

    title = "Personal Data Unavailable"
