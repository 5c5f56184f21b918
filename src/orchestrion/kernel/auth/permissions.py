"""Permissions and the roles that grant them.

Permissions are ``<resource>:<action>`` strings. A role is a named set of them;
``platform:admin`` is granted to platform administrators only (the bootstrap admin),
never by a tenant role.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Permission(StrEnum):
    """Every permission the platform checks."""

    WORKFLOWS_READ = "workflows:read"
    WORKFLOWS_WRITE = "workflows:write"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_RUN = "executions:run"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    TENANTS_READ = "tenants:read"
    API_KEYS_READ = "api_keys:read"
    API_KEYS_WRITE = "api_keys:write"
    AUDIT_READ = "audit:read"
    LLM_READ = "llm:read"
    LLM_WRITE = "llm:write"
    KNOWLEDGE_READ = "knowledge:read"
    KNOWLEDGE_WRITE = "knowledge:write"
    CONTENT_READ = "content:read"
    CONTENT_WRITE = "content:write"
    PLUGINS_READ = "plugins:read"
    PLUGINS_WRITE = "plugins:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    NOTIFICATIONS_READ = "notifications:read"
    NOTIFICATIONS_WRITE = "notifications:write"
    ANALYTICS_READ = "analytics:read"
    ANALYTICS_WRITE = "analytics:write"
    FLAGS_READ = "flags:read"
    FLAGS_WRITE = "flags:write"
    PLATFORM_ADMIN = "platform:admin"


_VIEWER = {
    Permission.WORKFLOWS_READ,
    Permission.EXECUTIONS_READ,
    Permission.KNOWLEDGE_READ,
    Permission.CONTENT_READ,
    Permission.PLUGINS_READ,
    Permission.TEMPLATES_READ,
    Permission.NOTIFICATIONS_READ,
    Permission.ANALYTICS_READ,
}
_EDITOR = _VIEWER | {
    Permission.WORKFLOWS_WRITE,
    Permission.KNOWLEDGE_WRITE,
    Permission.CONTENT_WRITE,
    Permission.PLUGINS_WRITE,
    Permission.TEMPLATES_WRITE,
    Permission.NOTIFICATIONS_WRITE,
    Permission.EXECUTIONS_RUN,
    Permission.API_KEYS_READ,
    Permission.API_KEYS_WRITE,
    Permission.LLM_READ,
}
_ADMIN = _EDITOR | {
    Permission.USERS_READ,
    Permission.USERS_WRITE,
    Permission.TENANTS_READ,
    Permission.AUDIT_READ,
    Permission.LLM_WRITE,
    Permission.ANALYTICS_WRITE,
    # Flag definitions (targeting rules included) are an admin's to read; changing them
    # also needs a platform admin (the flags service checks). Evaluating needs neither.
    Permission.FLAGS_READ,
    Permission.FLAGS_WRITE,
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(_VIEWER),
    "editor": frozenset(_EDITOR),
    "admin": frozenset(_ADMIN),
}


def permissions_for_roles(roles: Iterable[str], *, platform_admin: bool = False) -> list[str]:
    """The sorted union of the permissions of ``roles``; unknown roles grant nothing."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    if platform_admin:
        granted.add(Permission.PLATFORM_ADMIN)
    return sorted(granted)
