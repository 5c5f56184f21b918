"""Revocation notices: credentials that stop working before they expire.

Access tokens are verified without a call to auth and API-key answers are cached, so
ending a session or revoking a key must be *told* to every verifier (each gateway,
realtime). Once the change is committed, the auth service announces:

- ``session <id>``: a login ended (logout, a reused refresh token, and every session of a
  user who is demoted, disabled, deleted or given a new password). Access tokens carry
  their session as ``sid``; those of an ended session are refused from then on.
- ``api_key <id>``: a key was revoked or rotated; cached answers for it are dropped.
- ``user <id>``: a user's rights changed or the user is gone; cached answers for the
  user's API keys are dropped, so the next use asks auth again.

A verifier keeps the session notices of one access-token lifetime in a dict: checking a
request costs one lookup, never a round trip.

How notices travel:

- within a process (the embedded shape) auth and the gateway share one
  :class:`Revocations`, so a notice is applied before auth answers the request that
  caused it;
- across processes, with Redis, :meth:`Revocations.publish` adds each notice to a sorted
  set (score: the time after which it no longer matters) and publishes it on the channel
  of the same name, in one transaction. Every follower subscribes, and reads the set
  each time it (re)subscribes, so a process that starts later or loses Redis for a while
  still learns what it missed. A notice that cannot reach Redis is retried in the
  background until it no longer matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger("orchestrion.auth.revocation")

Kind = Literal["session", "api_key", "user"]
KINDS: frozenset[str] = frozenset(get_args(Kind))
DEFAULT_KEY = "orn:auth:revoked"
# How long a follower waits on the channel before checking the connection is alive.
_POLL_SECONDS = 5.0
_KEEPALIVE_SECONDS = 15.0
_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Revocation:
    """One notice: ``kind`` ``id`` stops working; ``until`` is when that no longer matters
    (Unix time: the credentials it concerns have all expired by then)."""

    kind: Kind
    id: str
    until: float


Listener = Callable[[Revocation], None]


class Revocations:
    """The revocation notices this process knows, and who to tell of new ones.

    ``lifetime``: how long a notice published here matters (the longest access-token
    lifetime plus clock leeway). ``redis_url``: share notices with other processes under
    ``key`` (sorted set and channel); ``follow``: also receive theirs (a process that only
    publishes, like the auth service, need not). Use as an async context manager, or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        lifetime: float = 960.0,
        redis_url: str | None = None,
        key: str = DEFAULT_KEY,
        follow: bool = True,
        timeout: float = 2.0,
    ) -> None:
        self.lifetime = lifetime
        self.key = key
        self.follow = follow
        self.timeout = timeout
        #: Ended sessions → when their notice lapses. Read on every request: never rebound.
        self.sessions: dict[str, float] = {}
        self._listeners: list[Listener] = []
        self._origin = uuid.uuid4().hex
        self._prune_at = 1024
        self._redis = _client(redis_url, timeout) if redis_url else None
        self._pending: list[Revocation] = []
        self._follower: asyncio.Task[None] | None = None
        self._resender: asyncio.Task[None] | None = None
        #: Set while the follower is subscribed and caught up (tests wait on it).
        self.following = asyncio.Event()

    # -- what verifiers use ------------------------------------------------------------

    def session_ended(self, session_id: str | None) -> bool:
        """Whether access tokens of ``session_id`` must be refused."""
        return session_id in self.sessions

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with every notice applied from now on (it must not block)."""
        self._listeners.append(listener)

    def apply(self, notices: Iterable[Revocation]) -> None:
        """Take notices into account (again is harmless) and tell the listeners."""
        now = time.time()
        for notice in notices:
            if notice.until <= now:
                continue
            if notice.kind == "session":
                self.sessions[notice.id] = max(notice.until, self.sessions.get(notice.id, 0.0))
            for listener in list(self._listeners):
                try:
                    listener(notice)
                except Exception:
                    logger.exception("a revocation listener failed")
        if len(self.sessions) > self._prune_at:
            for session_id, until in list(self.sessions.items()):
                if until <= now:
                    del self.sessions[session_id]
            self._prune_at = max(1024, 2 * len(self.sessions))

    # -- what the auth service uses ----------------------------------------------------

    async def publish(self, revoked: Iterable[tuple[Kind, str]]) -> None:
        """Announce that these stop working: here at once, through Redis when configured.

        Never raises for Redis trouble: the notices are then retried in the background
        (the revocation itself is already committed; this only spreads the word).
        """
        until = time.time() + self.lifetime
        notices = [Revocation(kind, ident, until) for kind, ident in dict.fromkeys(revoked)]
        if not notices:
            return
        self.apply(notices)
        if self._redis is None:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(notices)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning(
                "could not announce %d revocation(s) through Redis (%s); retrying",
                len(notices),
                exc,
            )
            self._pending.extend(notices)
            if self._resender is None or self._resender.done():
                self._resender = asyncio.create_task(self._resend(), name="revocations-resend")

    async def _send(self, notices: list[Revocation]) -> None:
        assert self._redis is not None
        payload = json.dumps(
            {"origin": self._origin, "notices": [[n.kind, n.id, n.until] for n in notices]}
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, {f"{n.kind}:{n.id}": n.until for n in notices})
            pipe.zremrangebyscore(self.key, "-inf", time.time())
            pipe.expire(self.key, int(self.lifetime) + 1)
            pipe.publish(self.key, payload)
            await pipe.execute()

    async def _resend(self) -> None:
        while self._pending:
            await asyncio.sleep(_RETRY_SECONDS)
            now = time.time()
            pending = [n for n in self._pending if n.until > now]
            try:
                async with asyncio.timeout(self.timeout):
                    if pending:
                        await self._send(pending)
            except (RedisError, OSError, TimeoutError):
                self._pending = pending
                continue
            self._pending = []
            logger.info("announced %d delayed revocation(s)", len(pending))

    # -- following other processes' notices --------------------------------------------

    async def start(self) -> None:
        """With Redis and ``follow``: read the recent notices, then follow new ones."""
        if self._redis is None or not self.follow or self._follower is not None:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._load()
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("revocation notices unreadable for now (%s); catching up later", exc)
        self._follower = asyncio.create_task(self._follow_forever(), name="revocations-follow")

    async def stop(self) -> None:
        """Stop following and resending; close the Redis client."""
        # Bounded: a Redis connection stuck mid-call must not hold up a process's exit.
        for task in (self._follower, self._resender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, self.timeout)
        self._follower = self._resender = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._redis.aclose(), self.timeout)

    async def __aenter__(self) -> Revocations:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _load(self) -> None:
        assert self._redis is not None
        entries = cast(
            "list[tuple[bytes, float]]",
            await self._redis.zrangebyscore(self.key, time.time(), "+inf", withscores=True),
        )
        notices = []
        for member, score in entries:
            kind, _, ident = member.decode().partition(":")
            if kind in KINDS and ident:
                notices.append(Revocation(kind, ident, float(score)))  # type: ignore[arg-type]
        self.apply(notices)

    def _receive(self, data: bytes) -> None:
        try:
            body: dict[str, Any] = json.loads(data)
            if body.get("origin") == self._origin:
                return  # applied when published
            notices = [
                Revocation(str(kind), str(ident), float(until))  # type: ignore[arg-type]
                for kind, ident, until in body["notices"]
                if kind in KINDS
            ]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed revocation notice")
            return
        self.apply(notices)

    async def _follow_forever(self) -> None:
        assert self._redis is not None
        failing = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.key)
                # Read the set only once subscribed: a notice published in between is in both.
                await self._load()
                if failing:
                    logger.info("revocation notices: Redis answers again; caught up")
                failing = False
                self.following.set()
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                self.following.clear()
                if not failing:
                    logger.warning("revocation notices: Redis unreachable (%s); retrying", exc)
                failing = True
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), self.timeout)  # type: ignore[no-untyped-call]
            await asyncio.sleep(_RETRY_SECONDS)

    async def _read(self, pubsub: Any) -> None:
        idle = 0.0
        while True:
            message = await pubsub.get_message(timeout=_POLL_SECONDS)
            if message is None:
                idle += _POLL_SECONDS
                if idle >= _KEEPALIVE_SECONDS:
                    await pubsub.ping()  # a dead connection fails here rather than never
                    idle = 0.0
                continue
            idle = 0.0
            if message.get("type") == "message":
                self._receive(message["data"])


def _client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_keepalive=True,
        # Reconnects are ours to make: each one must re-read what was missed.
        retry=Retry(NoBackoff(), 0),
    )
