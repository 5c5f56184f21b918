"""The hash chain of each tenant's audit lines.

Every line has a place (``seq``) in its tenant's chain and stores
``hash = SHA-256(previous hash + SHA-256(canonical content))``; the first line follows
:data:`GENESIS`, or the anchor retention left. The content holds the line's fields and
``personal_digest``, the SHA-256 of its personal fields (actor, address, user agent,
data): erasing a person blanks those fields but keeps the digest, so the chain still
verifies while any other edit, deletion or insertion breaks it.

Appends serialise per tenant: the tenant's head row is locked (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite's writer lock, taken by ``BEGIN IMMEDIATE``, already
serialises every write) until the transaction commits. Lines are chained when their
transaction commits (:func:`add_line` registers the hook), so the lock is held for the
commit only, not the request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.services.auth.models import AuditEvent, AuditHead

GENESIS = "0" * 64
NO_TENANT = "-"
_PENDING = "orchestrion.audit.pending"
_BATCH = 1000


def chain_of(tenant_id: str | None) -> str:
    """The chain a tenant's lines belong to."""
    return tenant_id or NO_TENANT


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def personal_digest(line: AuditEvent) -> str:
    """SHA-256 of the line's personal fields."""
    personal = {
        "actor_id": line.actor_id,
        "ip": line.ip,
        "user_agent": line.user_agent,
        "data": line.data or {},
    }
    return hashlib.sha256(_canonical(personal)).hexdigest()


def line_hash(line: AuditEvent, previous: str) -> str:
    """The hash of ``line`` following a line whose hash is ``previous``."""
    content = {
        "id": line.id,
        "tenant_id": line.tenant_id,
        "chain": line.chain,
        "seq": line.seq,
        "time": isoformat(line.created_at),
        "action": line.action,
        "actor_type": line.actor_type,
        "resource_type": line.target_type,
        "resource_id": line.target_id,
        "request_id": line.request_id,
        "service": line.service,
        "personal": line.personal_digest,
    }
    inner = hashlib.sha256(_canonical(content)).hexdigest()
    return hashlib.sha256((previous + inner).encode()).hexdigest()


# --- appending ---------------------------------------------------------------------


def add_line(session: AsyncSession, line: AuditEvent) -> None:
    """Add ``line`` to the caller's transaction; it is chained when that commits."""
    if line.created_at is None:
        line.created_at = utcnow()
    line.chain = chain_of(line.tenant_id)
    session.add(line)
    pending: list[AuditEvent] | None = session.info.get(_PENDING)
    if pending is None:
        session.info[_PENDING] = pending = []
        event.listen(session.sync_session, "before_commit", _chain_pending, once=True)
    pending.append(line)


def _chain_pending(sync_session: Session) -> None:
    # Runs inside AsyncSession.commit's greenlet: sync-style SQL is allowed here.
    pending: list[AuditEvent] = sync_session.info.pop(_PENDING, [])
    by_chain: dict[str, list[AuditEvent]] = {}
    for line in pending:
        by_chain.setdefault(line.chain or NO_TENANT, []).append(line)
    # A fixed order of locks: two transactions appending to the same tenants cannot
    # deadlock.
    with sync_session.no_autoflush:
        for chain in sorted(by_chain):
            head = _locked_head(sync_session, chain)
            for line in by_chain[chain]:
                head.seq += 1
                line.seq = head.seq
                line.personal_digest = personal_digest(line)
                line.hash = line_hash(line, head.hash)
                head.hash = line.hash


def _locked_head(sync_session: Session, chain: str) -> AuditHead:
    dialect = sync_session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    sync_session.execute(
        insert(AuditHead)
        .values(chain=chain, seq=0, hash=GENESIS, anchor_seq=0, anchor_hash=GENESIS)
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    return sync_session.execute(
        select(AuditHead)
        .where(AuditHead.chain == chain)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


# --- verifying ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What verifying one chain found: ``broken`` names the first bad line."""

    chain: str
    checked: int
    ok: bool
    anchor_seq: int
    head_seq: int
    broken_id: str | None = None
    broken_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The public shape of a verdict."""
        return {
            "tenant_id": None if self.chain == NO_TENANT else self.chain,
            "ok": self.ok,
            "checked": self.checked,
            "anchor_seq": self.anchor_seq,
            "head_seq": self.head_seq,
            "first_broken": None
            if self.ok
            else {"id": self.broken_id, "seq": self.broken_seq, "reason": self.reason},
        }


async def _lines(session: AsyncSession, chain: str, after: int) -> AsyncIterator[AuditEvent]:
    while True:
        rows = list(
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.chain == chain, AuditEvent.seq > after)
                    .order_by(AuditEvent.seq)
                    .limit(_BATCH)
                )
            ).scalars()
        )
        for row in rows:
            yield row
        if len(rows) < _BATCH:
            return
        after = rows[-1].seq or after
        session.expunge_all()


async def verify_chain(session: AsyncSession, *, chain: str) -> Verdict:
    """Recompute ``chain`` from its anchor and report its first broken link."""
    head = await session.get(AuditHead, chain)
    if head is None:
        return Verdict(chain=chain, checked=0, ok=True, anchor_seq=0, head_seq=0)
    anchor_seq, previous, head_seq, head_hash = (
        head.anchor_seq,
        head.anchor_hash,
        head.seq,
        head.hash,
    )
    expected = anchor_seq + 1
    checked = 0

    def broken(line_id: str | None, seq: int | None, reason: str) -> Verdict:
        return Verdict(
            chain=chain,
            checked=checked,
            ok=False,
            anchor_seq=anchor_seq,
            head_seq=head_seq,
            broken_id=line_id,
            broken_seq=seq,
            reason=reason,
        )

    async for line in _lines(session, chain, anchor_seq):
        if line.seq != expected:
            return broken(line.id, expected, f"line {expected} is missing")
        if line.erased_at is None and line.personal_digest != personal_digest(line):
            return broken(line.id, line.seq, "its actor, address or data were changed")
        if line_hash(line, previous) != line.hash:
            return broken(line.id, line.seq, "its content or place in the chain was changed")
        previous = line.hash or ""
        expected += 1
        checked += 1
    if expected - 1 != head_seq or previous != head_hash:
        return broken(None, expected, f"the chain ends at {expected - 1}, its head at {head_seq}")
    return Verdict(chain=chain, checked=checked, ok=True, anchor_seq=anchor_seq, head_seq=head_seq)


async def chains(session: AsyncSession, *, tenant_id: str | None) -> list[str]:
    """Every chain (a tenant's only, when given)."""
    if tenant_id is not None:
        return [chain_of(tenant_id)]
    return list(
        (await session.execute(select(AuditHead.chain).order_by(AuditHead.chain))).scalars()
    )


# --- retention ---------------------------------------------------------------------


async def prune(session: AsyncSession, *, chain: str, before: datetime) -> int:
    """Delete the lines of ``chain`` up to the last one older than ``before``, keeping
    that line's hash as the anchor the rest verifies from; how many went."""
    head = (
        await session.execute(select(AuditHead).where(AuditHead.chain == chain).with_for_update())
    ).scalar_one_or_none()
    if head is None:
        return 0
    last = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.hash)
            .where(AuditEvent.chain == chain, AuditEvent.created_at < before)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).first()
    if last is None or last.seq is None or last.seq <= head.anchor_seq:
        return 0
    count = (
        await session.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.chain == chain, AuditEvent.seq <= last.seq)
        )
    ).scalar_one()
    await session.execute(
        delete(AuditEvent).where(AuditEvent.chain == chain, AuditEvent.seq <= last.seq)
    )
    head.anchor_seq = last.seq
    head.anchor_hash = last.hash or GENESIS
    head.pruned_at = utcnow()
    await session.flush()
    return int(count)
