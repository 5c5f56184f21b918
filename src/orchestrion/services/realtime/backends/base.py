"""The port every realtime backend implements: seq, history, presence and fan-out.

A backend assigns each stored message of a channel the next sequence number, keeps
the last ``history_size`` of them (and, per tenant, at most ``max_tenant_messages``
messages and ``max_tenant_bytes`` bytes across its channels, trimming its oldest),
and delivers every envelope published anywhere (on
any instance sharing the backend) to the local ``deliver`` callback, in publish order
per channel. A backend whose fan-out can be interrupted (a lost connection) says so
when it resumes, so that the service backfills what was missed from history.
``memory`` serves one process; ``redis`` (streams for history, a Lua
script for atomic seq + append + publish, pub/sub for fan-out) serves many.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

EnvelopeKind = Literal["message", "token", "presence"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One thing to fan out on a channel key.

    ``message`` carries ``data`` and a ``seq``; ``token`` carries ``{"step_id", "text"}``
    and no seq (never stored); ``presence`` carries the members list. ``origin`` is the
    connection that caused it, which gets ``ref`` echoed in its copy.
    """

    key: str
    kind: EnvelopeKind
    payload: Any
    seq: int | None = None
    origin: str | None = None
    ref: Any = None

    def to_wire(self) -> dict[str, Any]:
        """A JSON-safe dict for backends that cross process boundaries."""
        return {
            "k": self.key,
            "t": self.kind,
            "p": self.payload,
            "s": self.seq,
            "o": self.origin,
            "r": self.ref,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Envelope:
        """The inverse of :meth:`to_wire`."""
        return cls(
            key=wire["k"],
            kind=wire["t"],
            payload=wire.get("p"),
            seq=wire.get("s"),
            origin=wire.get("o"),
            ref=wire.get("r"),
        )


@dataclass(slots=True)
class Replay:
    """What history holds after a seq: ``messages`` in order, and the first seq it lost."""

    messages: list[tuple[int, Any]] = field(default_factory=list)
    missing: tuple[int, int] | None = None  # (from, to), inclusive
    latest: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    """One connection's presence on a channel."""

    connection_id: str
    user_id: str
    state: str
    at: float


Deliver = Callable[[Envelope], None]
#: Told, with the keys listened to, that fan-out resumed after an interruption: envelopes
#: published meanwhile were not delivered, every one delivered after this call is live.
Resume = Callable[[list[str]], None]


class Backend(Protocol):
    """Storage and fan-out of channel messages."""

    async def start(self, deliver: Deliver, resume: Resume | None = None) -> None:
        """Connect and route every envelope for listened keys to ``deliver``; call
        ``resume`` when fan-out comes back after an interruption (a reconnect)."""

    async def ping(self) -> None:
        """Return when the shared store answers, raise when it does not (``/health``)."""

    async def close(self) -> None:
        """Release connections and background tasks."""

    async def listen(self, key: str) -> None:
        """Receive ``key``'s envelopes from now on (returns once that is guaranteed)."""

    async def unlisten(self, key: str) -> None:
        """Stop receiving ``key``'s envelopes."""

    async def append(self, key: str, data: Any, *, origin: str | None, ref: Any) -> int:
        """Store ``data`` under the next seq of ``key``, fan it out, return the seq."""

    async def broadcast(self, envelope: Envelope) -> None:
        """Fan ``envelope`` out without storing it."""

    async def latest(self, key: str) -> int:
        """The last seq assigned on ``key`` (0 when none)."""

    async def history(self, key: str, after: int) -> Replay:
        """The stored messages with seq > ``after`` and the range history lost."""

    async def set_presence(self, key: str, member: Member) -> list[dict[str, str]]:
        """Record ``member`` on ``key``; the members list afterwards."""

    async def drop_presence(self, key: str, connection_id: str) -> list[dict[str, str]] | None:
        """Forget a connection's presence; the new members list, or None if it had none."""

    async def members(self, key: str) -> list[dict[str, str]]:
        """The members list of ``key``: one entry per user, their latest state."""

    async def refresh_presence(self, entries: list[tuple[str, Member]]) -> None:
        """Mark this instance's presence entries alive (they expire otherwise)."""


def summarize(members: list[Member], *, now: float, ttl: float) -> list[dict[str, str]]:
    """One ``{"user_id", "state"}`` per user (their latest state), by user id."""
    latest: dict[str, Member] = {}
    for member in members:
        if now - member.at > ttl:
            continue
        seen = latest.get(member.user_id)
        if seen is None or member.at >= seen.at:
            latest[member.user_id] = member
    return [{"user_id": uid, "state": latest[uid].state} for uid in sorted(latest)]


def replay_from(stored: list[tuple[int, Any]], *, after: int, latest: int) -> Replay:
    """A :class:`Replay` from the stored messages with seq > ``after`` (oldest first)."""
    if latest <= after:
        return Replay(latest=latest)
    if not stored:
        return Replay(missing=(after + 1, latest), latest=latest)
    first = stored[0][0]
    missing = (after + 1, first - 1) if first > after + 1 else None
    return Replay(messages=stored, missing=missing, latest=latest)
