"""Who is calling: the verified identity every service works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user or API key, scoped to one tenant."""

    subject: str
    tenant_id: str
    kind: Literal["user", "api_key"] = "user"
    roles: tuple[str, ...] = ()
    permissions: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    session_id: str | None = None
    api_key_id: str | None = None
    #: When the credential it was verified from stops being valid (Unix seconds), if it
    #: does: long-lived connections end there unless they are re-authenticated. Not part
    #: of who the principal is, so equal principals may differ in it.
    expires_at: float | None = field(default=None, compare=False)

    @property
    def user_id(self) -> str:
        """The user acting: the subject itself, or the owner of the API key."""
        return self.subject

    @property
    def is_platform_admin(self) -> bool:
        """Whether the principal may act across tenants."""
        return Permission.PLATFORM_ADMIN in self.permissions

    def can(self, permission: str) -> bool:
        """Whether the principal holds ``permission``."""
        return permission in self.permissions

    def require(self, permission: str) -> None:
        """Raise :class:`Forbidden` unless the principal holds ``permission``."""
        if permission not in self.permissions:
            raise Forbidden(f"missing permission '{permission}'")

    def to_claims(self) -> dict[str, Any]:
        """A JSON-safe dict of this principal (``exp`` only when its credential expires)."""
        claims: dict[str, Any] = {
            "sub": self.subject,
            "tid": self.tenant_id,
            "kind": self.kind,
            "roles": list(self.roles),
            "perms": sorted(self.permissions),
            "email": self.email,
            "sid": self.session_id,
            "kid": self.api_key_id,
        }
        if self.expires_at is not None:
            claims["exp"] = self.expires_at
        return claims

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        """The inverse of :meth:`to_claims`."""
        kind = claims.get("kind", "user")
        return cls(
            subject=str(claims["sub"]),
            tenant_id=str(claims["tid"]),
            kind="api_key" if kind == "api_key" else "user",
            roles=tuple(claims.get("roles") or ()),
            permissions=frozenset(claims.get("perms") or ()),
            email=claims.get("email"),
            session_id=claims.get("sid"),
            api_key_id=claims.get("kid"),
            expires_at=float(claims["exp"]) if claims.get("exp") is not None else None,
        )
