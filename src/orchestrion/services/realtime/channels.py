"""Channel names, their per-tenant keys, and who may subscribe or publish.

| channel            | subscribe                         | publish (clients)                  |
|--------------------|-----------------------------------|------------------------------------|
| ``execution:<id>`` | ``executions:read``, own tenant   | no (the engine publishes)          |
| ``workflow:<id>``  | ``workflows:read``                | no (the platform publishes)        |
| ``user:<id>``      | that user only                    | ``workflows:write`` (direct messages) |
| ``tenant``         | any member of the tenant          | ``workflows:write``                |
| ``room:<name>``    | any member of the tenant          | ``workflows:write``                |

Publishing stores the message in the tenant's history, so it needs
``workflows:write``: a viewer may listen but not write.

Every channel lives inside a tenant: its key is ``<tenant_id>/<name>``, so a ``tenant``
or ``room:x`` channel of tenant A never reaches tenant B, and a direct message to a user
of another tenant reaches no one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.realtime.errors import BadChannel, ChannelForbidden, ReadOnlyChannel

Kind = Literal["execution", "workflow", "user", "tenant", "room"]
MAX_CHANNEL_LENGTH = 200
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,159}")
_WITH_ID: dict[str, Kind] = {
    "execution": "execution",
    "workflow": "workflow",
    "user": "user",
    "room": "room",
}
_READ_PERMISSION: dict[Kind, str] = {
    "execution": Permission.EXECUTIONS_READ,
    "workflow": Permission.WORKFLOWS_READ,
}


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel name: ``kind`` and, except for ``tenant``, an ``ident``."""

    name: str
    kind: Kind
    ident: str | None = None

    def key(self, tenant_id: str) -> str:
        """The tenant-scoped key the backend stores and fans out under."""
        return f"{tenant_id}/{self.name}"


def parse_channel(name: object) -> Channel:
    """The channel ``name`` denotes; :class:`BadChannel` when it is none of the forms."""
    if not isinstance(name, str) or not name or len(name) > MAX_CHANNEL_LENGTH:
        raise BadChannel("a channel is a non-empty string of at most 200 characters")
    if name == "tenant":
        return Channel(name=name, kind="tenant")
    prefix, sep, ident = name.partition(":")
    kind = _WITH_ID.get(prefix)
    if not sep or kind is None:
        raise BadChannel(
            f"unknown channel '{name}': use execution:<id>, workflow:<id>, user:<id>, "
            "tenant or room:<name>"
        )
    if not _IDENT.fullmatch(ident):
        raise BadChannel(f"bad channel id in '{name}'")
    return Channel(name=name, kind=kind, ident=ident)


def channel_of_key(key: str) -> str:
    """The client-facing name of a tenant-scoped key."""
    return key.partition("/")[2]


def check_subscribe(principal: Principal, channel: Channel) -> None:
    """Raise unless ``principal`` may subscribe (tenant ownership of executions is checked
    by the service against the execution's own record)."""
    permission = _READ_PERMISSION.get(channel.kind)
    if permission is not None and not principal.can(permission):
        raise ChannelForbidden(f"'{channel.name}' needs the permission '{permission}'")
    if channel.kind == "user" and channel.ident != principal.user_id:
        raise ChannelForbidden("only the user themself may subscribe to their user channel")


def check_publish(principal: Principal, channel: Channel) -> None:
    """Raise unless ``principal`` may publish from a client frame."""
    if channel.kind in _READ_PERMISSION:
        raise ReadOnlyChannel(f"'{channel.name}' is published by the platform, not by clients")
    if not principal.can(Permission.WORKFLOWS_WRITE):
        raise ChannelForbidden(
            f"publishing on '{channel.name}' needs the permission '{Permission.WORKFLOWS_WRITE}'"
        )


def check_presence(principal: Principal, channel: Channel) -> None:
    """Presence may be set wherever the principal may subscribe."""
    check_subscribe(principal, channel)
