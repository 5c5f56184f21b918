"""The Redis backend: several realtime instances share seq, history, presence and fan-out.

Per channel key: ``seq:<key>`` (INCR counter), ``log:<key>`` (a stream whose entry ids
are ``<seq>-0``, capped at ``history_size``), ``presence:<key>`` (a hash of connection →
member) and the pub/sub channel ``ch:<key>``. One Lua script increments, appends and
publishes atomically, so every instance sees a channel's messages in seq order.

The pub/sub connection reconnects by itself and subscribes again to every channel,
the ``control`` channel first; so the confirmation of ``control`` after the first one
marks a reconnect: everything read after it is live, and the service is told to
backfill, from the streams, what was published while the connection was down.

Per tenant (the part of a key before its last ``/``): ``tenant:<id>`` (a hash: ``n``
messages and ``b`` bytes stored, ``c`` an append counter) and ``tindex:<id>`` (a sorted
set of ``<seq>|<bytes>|<key>``, scored by that counter). The append script trims the
tenant's oldest messages, whatever their channel, past ``max_tenant_messages`` or
``max_tenant_bytes``. The script touches the logs of the tenant's other channels, which
it cannot name in advance: the backend needs one Redis, not a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from typing import Any

from redis.asyncio import Redis

from orchestrion.services.realtime.backends.base import (
    Deliver,
    Envelope,
    Member,
    Replay,
    Resume,
    replay_from,
    summarize,
)

logger = logging.getLogger("orchestrion.realtime")
_CONFIRM_SECONDS = 5.0
# INCR, XADD (starting the stream afresh if it survived its counter), trim the channel
# to history_size and the tenant to its bounds (oldest first, any channel), EXPIRE, PUBLISH.
# A tenant's counters are the sum of its index: a member whose stream entry expired or
# was dropped still counts until it is trimmed (it is among the oldest then).
_APPEND = """
local seq = redis.call('INCR', KEYS[1])
local ttl = ARGV[3]
if tonumber(ARGV[2]) > 0 then
  local id = seq .. '-0'
  local size = string.len(ARGV[1])
  if not pcall(redis.call, 'XADD', KEYS[2], id, 'd', ARGV[1], 'n', size) then
    redis.call('DEL', KEYS[2])
    redis.call('XADD', KEYS[2], id, 'd', ARGV[1], 'n', size)
  end
  local at = redis.call('HINCRBY', KEYS[3], 'c', 1)
  if redis.call('ZADD', KEYS[4], at, seq .. '|' .. size .. '|' .. ARGV[6]) == 1 then
    redis.call('HINCRBY', KEYS[3], 'n', 1)
    redis.call('HINCRBY', KEYS[3], 'b', size)
  end
  while redis.call('XLEN', KEYS[2]) > tonumber(ARGV[2]) do
    local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', KEYS[2], head[1])
    local fields = head[2]
    local n = 0
    for i = 1, #fields, 2 do
      if fields[i] == 'n' then n = tonumber(fields[i + 1]) end
    end
    local old = string.match(head[1], '^(%d+)') .. '|' .. n .. '|' .. ARGV[6]
    if redis.call('ZREM', KEYS[4], old) == 1 then
      redis.call('HINCRBY', KEYS[3], 'n', -1)
      redis.call('HINCRBY', KEYS[3], 'b', -n)
    end
  end
  local max_n = tonumber(ARGV[7])
  local max_b = tonumber(ARGV[8])
  while true do
    local n = tonumber(redis.call('HGET', KEYS[3], 'n') or '0')
    local b = tonumber(redis.call('HGET', KEYS[3], 'b') or '0')
    if n <= 0 or (n <= max_n and b <= max_b) then break end
    local oldest = redis.call('ZPOPMIN', KEYS[4])[1]
    if not oldest then
      redis.call('HSET', KEYS[3], 'n', 0, 'b', 0)
      break
    end
    local old_seq, old_size, old_key = string.match(oldest, '^(%d+)|(%d+)|(.*)$')
    redis.call('XDEL', ARGV[9] .. old_key, old_seq .. '-0')
    redis.call('HINCRBY', KEYS[3], 'n', -1)
    redis.call('HINCRBY', KEYS[3], 'b', -tonumber(old_size))
  end
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  redis.call('EXPIRE', KEYS[4], ttl)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('PUBLISH', ARGV[4], seq .. '|' .. ARGV[5])
return seq
"""


class RedisBackend:
    """Streams for history, a script for seq, pub/sub for fan-out, hashes for presence."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        history_size: int,
        history_ttl_seconds: int,
        presence_ttl_seconds: float,
        max_tenant_messages: int = 50_000,
        max_tenant_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.history_size = history_size
        self.history_ttl = history_ttl_seconds
        self.presence_ttl = presence_ttl_seconds
        self.max_tenant_messages = max_tenant_messages
        self.max_tenant_bytes = max_tenant_bytes
        self.redis: Redis = Redis.from_url(url, decode_responses=True)
        self._pubsub = self.redis.pubsub()
        self._append = self.redis.register_script(_APPEND)
        self._deliver: Deliver = lambda _envelope: None
        self._resume: Resume | None = None
        self._control = f"{prefix}control"
        self._connected = False  # the first confirmation of control was read
        self._listeners: dict[str, int] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._confirming: dict[str, deque[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    async def start(self, deliver: Deliver, resume: Resume | None = None) -> None:
        """Connect, and read pub/sub in a background task."""
        self._deliver = deliver
        self._resume = resume
        await self.redis.ping()
        # A standing subscription keeps the reader blocked on the socket, never idle-looping,
        # and its confirmations tell reconnects apart.
        await self._pubsub.subscribe(self._control)
        self._reader = asyncio.create_task(self._read(), name="realtime-redis-reader")

    async def ping(self) -> None:
        """PING Redis."""
        await self.redis.ping()

    async def close(self) -> None:
        """Stop reading and disconnect."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("redis pub/sub read failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                if message["channel"] == self._control:
                    self._resubscribed()
                waiting = self._confirming.get(message["channel"])
                if waiting:
                    future = waiting.popleft()
                    if not future.done():
                        future.set_result(None)
            elif message["type"] == "message":
                self._dispatch(message["data"])

    def _resubscribed(self) -> None:
        if not self._connected:
            self._connected = True
            return
        logger.info("realtime pub/sub reconnected; backfilling from history")
        if self._resume is not None:
            prefix = self._key("ch", "")
            self._resume([channel.removeprefix(prefix) for channel in self._listeners])

    def _dispatch(self, raw: str) -> None:
        head, _, body = raw.partition("|")
        try:
            wire = json.loads(body)
            if head != "-":
                wire["s"] = int(head)
            envelope = Envelope.from_wire(wire)
        except (ValueError, KeyError, TypeError):
            logger.warning("dropped a malformed realtime envelope")
            return
        self._deliver(envelope)

    async def listen(self, key: str) -> None:
        """SUBSCRIBE once per key and wait for Redis to confirm it."""
        channel = self._key("ch", key)
        count = self._listeners.get(channel, 0)
        self._listeners[channel] = count + 1
        if count == 0:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ready[channel] = future
            self._confirming.setdefault(channel, deque()).append(future)
            try:
                await self._pubsub.subscribe(channel)
            except BaseException:
                # Redis is unreachable: forget the attempt (a reconnect must not claim it).
                self._listeners.pop(channel, None)
                self._ready.pop(channel, None)
                with contextlib.suppress(ValueError):
                    self._confirming.get(channel, deque()).remove(future)
                raise
        ready = self._ready.get(channel)
        if ready is not None:
            await asyncio.wait_for(asyncio.shield(ready), _CONFIRM_SECONDS)

    async def unlisten(self, key: str) -> None:
        """UNSUBSCRIBE when the last local listener leaves."""
        channel = self._key("ch", key)
        count = self._listeners.get(channel, 0) - 1
        if count > 0:
            self._listeners[channel] = count
            return
        self._listeners.pop(channel, None)
        self._ready.pop(channel, None)
        await self._pubsub.unsubscribe(channel)

    async def append(self, key: str, data: Any, *, origin: str | None, ref: Any) -> int:
        """Run the append script: the seq is Redis's, shared by every instance."""
        envelope = Envelope(key=key, kind="message", payload=data, origin=origin, ref=ref)
        tenant = key.rpartition("/")[0]  # channel names hold no "/"
        seq = await self._append(
            keys=[
                self._key("seq", key),
                self._key("log", key),
                self._key("tenant", tenant),
                self._key("tindex", tenant),
            ],
            args=[
                json.dumps(data, separators=(",", ":")),
                self.history_size,
                self.history_ttl,
                self._key("ch", key),
                json.dumps(envelope.to_wire(), separators=(",", ":")),
                key,
                self.max_tenant_messages,
                self.max_tenant_bytes,
                self._key("log", ""),
            ],
        )
        return int(seq)

    async def broadcast(self, envelope: Envelope) -> None:
        """PUBLISH without storing."""
        body = json.dumps(envelope.to_wire(), separators=(",", ":"))
        await self.redis.publish(self._key("ch", envelope.key), f"-|{body}")

    async def latest(self, key: str) -> int:
        """The shared counter."""
        return int(await self.redis.get(self._key("seq", key)) or 0)

    async def history(self, key: str, after: int) -> Replay:
        """Counter and stream read in one transaction, so they agree."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key("seq", key))
            pipe.xrange(self._key("log", key), min=f"{after + 1}-0", max="+")
            latest_raw, entries = await pipe.execute()
        stored = [
            (int(entry_id.partition("-")[0]), json.loads(fields["d"]))
            for entry_id, fields in entries
        ]
        return replay_from(stored, after=after, latest=int(latest_raw or 0))

    async def set_presence(self, key: str, member: Member) -> list[dict[str, str]]:
        """HSET this connection's entry, then summarize."""
        await self._write_presence([(key, member)])
        return await self.members(key)

    async def _write_presence(self, entries: list[tuple[str, Member]]) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, member in entries:
                hash_key = self._key("presence", key)
                value = {"u": member.user_id, "s": member.state, "at": member.at, "seen": now}
                pipe.hset(hash_key, member.connection_id, json.dumps(value))
                pipe.expire(hash_key, int(self.presence_ttl * 2) + 1)
            await pipe.execute()

    async def drop_presence(self, key: str, connection_id: str) -> list[dict[str, str]] | None:
        """HDEL, then summarize (None when there was no entry)."""
        removed = await self.redis.hdel(self._key("presence", key), connection_id)
        if not removed:
            return None
        return await self.members(key)

    async def members(self, key: str) -> list[dict[str, str]]:
        """Live entries of every instance; entries of crashed instances are pruned."""
        hash_key = self._key("presence", key)
        raw: dict[str, str] = await self.redis.hgetall(hash_key)  # type: ignore[assignment]
        now = time.time()
        members: list[Member] = []
        stale: list[str] = []
        for connection_id, value in raw.items():
            try:
                entry = json.loads(value)
                member = Member(connection_id, str(entry["u"]), str(entry["s"]), float(entry["at"]))
                seen = float(entry["seen"])
            except (ValueError, KeyError, TypeError):
                stale.append(connection_id)
                continue
            if now - seen > self.presence_ttl:
                stale.append(connection_id)
            else:
                members.append(member)
        if stale:
            await self.redis.hdel(hash_key, *stale)
        return summarize(members, now=now, ttl=math.inf)

    async def refresh_presence(self, entries: list[tuple[str, Member]]) -> None:
        """Rewrite this instance's entries, marking them seen now."""
        if entries:
            await self._write_presence(entries)
