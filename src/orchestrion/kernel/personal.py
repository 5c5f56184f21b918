"""A person's data across services: what each service holding some mounts.

Two halves, the same for every service:

- **export**: ``POST /internal/<service>/personal-data`` with a :class:`Person` answers
  that service's records of them as JSON. It is internal (the internal token, hidden
  from the OpenAPI document, never routed by the gateway): the auth service gathers every
  service's answer into ``GET /api/v1/auth/users/{id}/export``.
- **erasure**: auth publishes ``orchestrion.user.erased`` on ``auth.events`` (data: a
  :class:`Person`); each service joins its own group (:func:`subscribe_erasure`) and
  deletes or anonymises its records. Handlers must be idempotent: an event may arrive
  twice.

A person is named by their user id, and where a service kept their email instead (an
approver's name), by the SHA-256 of the lower-cased email (:func:`email_digest`): the
address itself never leaves auth, on the bus or in a URL.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.audit import USER_ERASED, USERS_TOPIC, anonymous_actor
from orchestrion.kernel.bus import Bus, CloudEvent, Subscription
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.http.deps import Internal, Session

PATH = "/internal/{service}/personal-data"
logger = logging.getLogger("orchestrion.personal")


def email_digest(email: str) -> str:
    """How services recognise a person's email without being told it."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class Person(BaseModel):
    """Whose records to export or erase: the body of the export call and the data of
    ``orchestrion.user.erased`` (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=255)
    tenant_id: str | None = Field(default=None, max_length=36)
    email_digest: str | None = Field(
        default=None, max_length=64, description="SHA-256 of the lower-cased email."
    )

    @property
    def pseudonym(self) -> str:
        """The name kept where a record of theirs must stay (``erased:<digest>``)."""
        return anonymous_actor(self.user_id)

    @property
    def ids(self) -> list[str]:
        """The values naming them in a ``created_by``-like column: before and after an
        erasure (an export after it shows what was kept, under the pseudonym)."""
        return [self.user_id, self.pseudonym]

    def named_by(self, value: object) -> bool:
        """Whether ``value`` (a user id or an email) names this person."""
        if not isinstance(value, str) or not value:
            return False
        if value == self.user_id:
            return True
        return self.email_digest is not None and email_digest(value) == self.email_digest


#: A service's records of a person, by kind (``{"templates": [...], "ratings": [...]}``).
Records = dict[str, list[dict[str, Any]]]
Exporter = Callable[[AsyncSession, Person], Awaitable[Records]]
Eraser = Callable[[AsyncSession, Person], Awaitable[None]]


def export_router(service: str, export: Exporter) -> APIRouter:
    """The internal route answering ``service``'s records of a person."""
    router = APIRouter()

    @router.post(
        PATH.format(service=service),
        include_in_schema=False,
        response_model=Records,
    )
    async def personal_data(person: Person, session: Session, _internal: Internal) -> Records:
        return await export(session, person)

    return router


async def subscribe_erasure(
    bus: Bus, database: Database, *, service: str, erase: Eraser
) -> Subscription:
    """Erase a person's records of ``service`` whenever auth announces an erasure (one
    transaction per event; a failure is retried by the bus)."""

    async def handle(event: CloudEvent) -> None:
        if event.type != USER_ERASED:
            return
        try:
            person = Person.model_validate(event.data)
        except ValidationError as exc:
            logger.warning("erasure event %s dropped: %s", event.id, exc)
            return
        async with database.session() as session:
            await erase(session, person)
        logger.info("%s erased the records of %s", service, person.pseudonym)

    return await bus.subscribe(USERS_TOPIC, f"{service}-erasure", handle)
