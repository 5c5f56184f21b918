"""The platform's audit trail, as every service writes to it: a line staged on the bus.

A service records who did what in the same transaction as the change itself
(:func:`record`, through the transactional outbox), so a line exists exactly when the
change committed. The auth service keeps the trail: it consumes :data:`TOPIC`, chains
each tenant's lines with SHA-256 and serves them at ``GET /api/v1/audit``. A line's id
is its event's id, so a redelivered event appends nothing.

``data`` of an ``orchestrion.audit.recorded`` event::

    {"tenant_id", "actor_id", "actor_type", "action", "resource_type", "resource_id",
     "ip", "user_agent", "request_id", "service", "data", "time"}

Erasure of a person travels the other way: the auth service publishes
:data:`USER_ERASED` on :data:`USERS_TOPIC` (``data``: ``{"user_id", "tenant_id",
"email_digest", "actor"}``), and every service holding personal data deletes or
anonymises it (:func:`anonymous_actor` is the name they keep in its place;
:mod:`orchestrion.kernel.personal` the route and handler they mount). A line recorded
before the erasure and relayed after it is anonymised when the trail appends it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from orchestrion.kernel.auth.identity import CLIENT_IP_HEADER
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.ids import isoformat, new_id, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from starlette.requests import Request

    from orchestrion.kernel.auth.principal import Principal

TOPIC = "audit.events"
EVENT_TYPE = "orchestrion.audit.recorded"
USERS_TOPIC = "auth.events"
USER_ERASED = "orchestrion.user.erased"
USER_AGENT_LENGTH = 300


@dataclass(frozen=True, kw_only=True, slots=True)
class Actor:
    """Who acted, and from where: taken from a request by :func:`actor_of`."""

    tenant_id: str | None
    actor_id: str | None
    actor_type: str = "user"
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


def current_request_id() -> str | None:
    """The id of the request being served, if any (bound by the request-id middleware)."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def actor_of(request: Request | None, principal: Principal | None) -> Actor:
    """The actor of a request: the user, or the API key that stands for them, with the
    address the gateway saw, the user agent and the request id."""
    tenant_id = principal.tenant_id if principal is not None else None
    actor_id: str | None = None
    actor_type = "system"
    if principal is not None:
        if principal.kind == "api_key" and principal.api_key_id:
            actor_id, actor_type = principal.api_key_id, "api_key"
        else:
            actor_id, actor_type = principal.subject, principal.kind
    if request is None:
        return Actor(
            tenant_id=tenant_id,
            actor_id=actor_id,
            actor_type=actor_type,
            request_id=current_request_id(),
        )
    client = request.client.host if request.client else None
    agent = request.headers.get("user-agent")
    return Actor(
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_type=actor_type,
        ip=request.headers.get(CLIENT_IP_HEADER) or client,
        user_agent=agent[:USER_AGENT_LENGTH] if agent else None,
        request_id=getattr(request.state, "request_id", None) or current_request_id(),
    )


def record(
    session: AsyncSession,
    *,
    service: str,
    actor: Actor,
    action: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
    data: dict[str, Any] | None = None,
    tenant_id: str | None = None,
) -> str:
    """Stage an audit line in the caller's transaction; its id.

    ``action`` is ``<resource>.<verb>`` (``workflow.created``); ``tenant_id`` overrides
    the actor's (a platform admin acting on another tenant).
    """
    line_id = new_id()
    stage(
        session,
        topic=TOPIC,
        event_=CloudEvent(
            id=line_id,
            source=f"orchestrion/{service}",
            type=EVENT_TYPE,
            subject=f"{resource_type}s/{resource_id}" if resource_type and resource_id else None,
            data={
                "tenant_id": tenant_id if tenant_id is not None else actor.tenant_id,
                "actor_id": actor.actor_id,
                "actor_type": actor.actor_type,
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "ip": actor.ip,
                "user_agent": actor.user_agent,
                "request_id": actor.request_id,
                "service": service,
                "data": data or {},
                "time": isoformat(utcnow()),
            },
        ),
    )
    return line_id


def record_request(
    session: AsyncSession,
    request: Request,
    principal: Principal,
    *,
    action: str,
    resource_type: str,
    resource_id: str,
    data: dict[str, Any] | None = None,
    tenant_id: str | None = None,
) -> str:
    """:func:`record` what ``principal`` did in ``request``, to the service serving it
    (``app.state.service_name``); the line's id."""
    return record(
        session,
        service=request.app.state.service_name,
        actor=actor_of(request, principal),
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        data=data,
        tenant_id=tenant_id,
    )


def anonymous_actor(user_id: str) -> str:
    """The name an erased user keeps where a record must stay (``erased:<digest>``): the
    same for every line of that person, and not their id."""
    return "erased:" + hashlib.sha256(user_id.encode()).hexdigest()[:16]
