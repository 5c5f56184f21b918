"""One rule against privilege escalation: nobody acts on a principal with more power.

A principal's *power* is the set of permissions it holds: a user's come from their roles
(viewer < editor < admin, each a superset of the one before) plus ``platform:admin`` for
platform admins; an API key's are its scopes within its owner's current permissions; a
caller's are those of the credential it presents (a key never yields more than its
scopes, even when its owner could do more).

An actor may create, change, re-password, delete, rotate or revoke a target only when
the actor's power contains the target's power, before *and* after the change. So a
tenant admin cannot touch a platform admin of their tenant, cannot raise anyone above
themselves, and a key that manages keys cannot rotate its owner's broader key and walk
away with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrion.kernel.auth.permissions import ROLE_PERMISSIONS, Permission, permissions_for_roles
from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.auth.errors import PrivilegeEscalation

#: Ranked from least to most powerful, for messages ("an admin", "a platform admin").
_RANKS: tuple[tuple[str, frozenset[str]], ...] = (
    ("viewer", ROLE_PERMISSIONS["viewer"]),
    ("editor", ROLE_PERMISSIONS["editor"]),
    ("admin", ROLE_PERMISSIONS["admin"]),
    ("platform admin", ROLE_PERMISSIONS["admin"] | {Permission.PLATFORM_ADMIN.value}),
)


def user_power(roles: Iterable[str], *, platform_admin: bool) -> frozenset[str]:
    """The permissions a user with ``roles`` (and the platform-admin flag) holds."""
    return frozenset(permissions_for_roles(roles, platform_admin=platform_admin))


def key_power(scopes: Iterable[str], *, owner_power: frozenset[str]) -> frozenset[str]:
    """What an API key can do: its scopes, within what its owner can do now."""
    return frozenset(scopes) & owner_power


def rank_of(power: frozenset[str]) -> str:
    """The highest role whose permissions ``power`` contains, for messages."""
    name = "no role"
    for role, granted in _RANKS:
        if granted <= power:
            name = role
    return name


def check_power(actor: Principal, target: frozenset[str], *, action: str) -> None:
    """Refuse ``action`` when ``target`` holds a permission ``actor`` does not.

    The detail names the missing permissions so the caller knows what they lack, and
    says whether the credential is an API key (whose scopes may be the limit).
    """
    missing = sorted(target - actor.permissions)
    if not missing:
        return
    holder = "this API key does" if actor.kind == "api_key" else "you do"
    raise PrivilegeEscalation(
        f"cannot {action}: it holds {', '.join(missing)}, which {holder} not hold "
        f"(nobody may act on a principal with more power than their own; the target "
        f"ranks as {rank_of(target)})",
        errors=[{"loc": ["permissions"], "msg": f"missing {p}"} for p in missing],
    )
