"""Rate limiting at the gateway, after authorization and before the cache.

Each request is counted against one bucket: the login limit (``POST /api/v1/auth/login``,
per client IP), the route's own limit, or the gateway's default, per caller (API key,
user, or client IP when anonymous). Limits use ``limits`` notation (``100/minute``,
``10/second;1000/hour``: every part must allow the request).

Strategies:

- ``sliding``: an exact moving window, the ``limits`` library's ``MovingWindowRateLimiter``
  in memory; on Redis a script keeping the same list layout that also returns what the
  headers need, so a request costs ONE round trip (``limits`` needs two: hit, then stats).
- ``token_bucket``: the bucket holds ``amount`` tokens and refills ``amount`` per period,
  so a quiet caller may burst; ``limits`` has none, hence a small script and its
  in-memory twin.

On Redis (``redis.url``) every replica counts in the same keys, with Redis's clock, so
N gateways enforce one limit (exact below 200 per period; above, a busy caller's hits
are taken a few at a time, see :class:`RedisBackend`). A Redis failure lets requests
through (fail open).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import LRUCache
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError
from starlette.types import Message, Scope, Send

from orchestrion.gateway.policies.shared import StorageGuard, caller_id, client_ip
from orchestrion.gateway.routes import Route
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus.batching import Coalescer
from orchestrion.kernel.errors import TooManyRequests
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.observability.metrics import GATEWAY_RATE_LIMITED
from orchestrion.settings import Settings

LOGIN_PATH = "/api/v1/auth/login"


class RateLimited(TooManyRequests):
    """The caller used up its rate limit; ``Retry-After`` says when to come back."""

    title = "Too Many Requests"


@dataclass(slots=True)  # not frozen: built on every request, and frozen costs 4x as much
class Decision:
    """One counted request: allowed or not, and the numbers the headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the quota is whole again (window slides past / bucket full)
    retry_after: float  # seconds until a refused request may succeed

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers (IETF draft, seconds for the reset)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset))),
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The same headers as ASGI header pairs."""
        return [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % max(0, self.remaining)),
            (b"ratelimit-reset", b"%d" % max(0, math.ceil(self.reset))),
        ]


def _tightest(decisions: Sequence[Decision], allowed: bool) -> Decision:
    """The limit closest to exhaustion speaks for all (the one that refused, if any)."""
    if len(decisions) == 1:  # the common case, without the search
        only = decisions[0]
        retry = 0.0 if only.allowed else only.retry_after
        return Decision(allowed, only.limit, only.remaining, only.reset, retry)
    worst = min(decisions, key=lambda d: (d.remaining, -d.retry_after))
    retry = max((d.retry_after for d in decisions if not d.allowed), default=0.0)
    return Decision(allowed, worst.limit, worst.remaining, worst.reset, retry)


class Backend(Protocol):
    """Counts one request against every item, all or nothing."""

    async def acquire(self, key: str, items: Sequence[RateLimitItem]) -> Decision: ...


class MemorySliding:
    """The ``limits`` moving window in this process."""

    def __init__(self) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def acquire(self, key: str, items: Sequence[RateLimitItem]) -> Decision:
        """Hit every item if all allow it; report the tightest."""
        allowed = all([await self.limiter.test(item, key) for item in items])
        if allowed:
            for item in items:
                await self.limiter.hit(item, key)
        now = time.time()
        decisions = []
        for item in items:
            stats = await self.limiter.get_window_stats(item, key)
            wait = stats.reset_time - now if stats.remaining <= 0 else 0.0
            decisions.append(
                Decision(stats.remaining > 0, item.amount, stats.remaining,
                         stats.reset_time - now, wait)
            )  # fmt: skip
        return _tightest(decisions, allowed)


class MemoryTokenBucket:
    """Token buckets in this process; the least recently used are forgotten first
    (a forgotten bucket is a full one, as it would be after a quiet period)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=max_keys)

    async def acquire(self, key: str, items: Sequence[RateLimitItem]) -> Decision:
        """Take one token from every bucket if each has one."""
        now = time.monotonic()
        states = []
        for item in items:
            capacity, rate = item.amount, item.amount / item.get_expiry()
            bucket = f"{key}/{item.key_for()}"
            tokens, then = self.buckets.get(bucket, (float(capacity), now))
            states.append((bucket, capacity, rate, min(capacity, tokens + (now - then) * rate)))
        allowed = all(tokens >= 1 for *_, tokens in states)
        decisions = []
        for bucket, capacity, rate, tokens in states:
            left = tokens - 1 if allowed else tokens
            self.buckets[bucket] = (left, now)
            wait = 0.0 if left >= 1 else (1 - left) / rate
            decisions.append(
                Decision(left >= 1, capacity, math.floor(left), (capacity - left) / rate, wait)
            )
        return _tightest(decisions, allowed)


# KEYS: one list per item: hit times, newest first, trimmed to the limit (the layout of
# limits' moving window). ARGV: the hits asked for, then limit and window seconds per item.
# Hits are granted in order while every item has room (all or nothing per hit); the reply
# is the number granted, then remaining, reset ms and retry ms per item after them.
SLIDING_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local granted = tonumber(ARGV[1])
local counts = {}
for i, key in ipairs(KEYS) do
  local limit, expiry = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local low, high, last = 0, redis.call('LLEN', key) - 1, -1
  while low <= high do
    local mid = math.floor((low + high) / 2)
    if tonumber(redis.call('LINDEX', key, mid)) >= now - expiry then
      last = mid
      low = mid + 1
    else
      high = mid - 1
    end
  end
  counts[i] = last + 1
  granted = math.min(granted, math.max(0, limit - counts[i]))
end
local result = {granted}
local stamps = {}
for j = 1, granted do stamps[j] = string.format('%.6f', now) end
for i, key in ipairs(KEYS) do
  local limit, expiry = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local count = counts[i] + granted
  if granted > 0 then
    redis.call('LPUSH', key, unpack(stamps))
    redis.call('LTRIM', key, 0, limit - 1)
    redis.call('EXPIRE', key, expiry)
  end
  local reset = 0
  if count > 0 then
    reset = math.ceil((tonumber(redis.call('LINDEX', key, count - 1)) + expiry - now) * 1000)
  end
  local retry = 0
  if count >= limit then retry = reset end
  table.insert(result, limit - count)
  table.insert(result, reset)
  table.insert(result, retry)
end
return result
"""

# KEYS: one hash {tokens, ts} per item. ARGV: the hits asked for, then capacity and period
# seconds per item. Reply as the sliding script's.
BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local granted = tonumber(ARGV[1])
local tokens = {}
for i, key in ipairs(KEYS) do
  local capacity, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local level = tonumber(state[1]) or capacity
  local since = math.max(0, now - (tonumber(state[2]) or now))
  tokens[i] = math.min(capacity, level + since * capacity / period)
  granted = math.min(granted, math.max(0, math.floor(tokens[i])))
end
local result = {granted}
for i, key in ipairs(KEYS) do
  local capacity, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local rate = capacity / period
  local left = tokens[i] - granted
  redis.call('HSET', key, 'tokens', string.format('%.6f', left), 'ts', string.format('%.6f', now))
  redis.call('PEXPIRE', key, math.ceil(period * 1000))
  local retry = 0
  if left < 1 then retry = math.ceil((1 - left) / rate * 1000) end
  table.insert(result, math.floor(left))
  table.insert(result, math.ceil((capacity - left) / rate * 1000))
  table.insert(result, retry)
end
return result
"""

_Granted = tuple[
    list[int], int
]  # the script's reply, and hits granted after this one (-1: refused)

# A busy counter takes hits ahead: as many as it used in LEASE_SECONDS of the last second
# (or of this one so far, when more), at most 1/LEASE_SHARE of its tightest limit and
# LEASE_MAX; unused ones lapse after LEASE_SECONDS. A limit under 2 x LEASE_SHARE is
# never leased ahead: it stays exact.
LEASE_SECONDS, LEASE_SHARE, LEASE_MAX = 0.05, 100, 256


@dataclass(slots=True)
class _Lease:
    """Hits a counter was granted ahead, and the script's reply after granting them."""

    left: int
    reply: list[int]
    at: float
    until: float


@dataclass(slots=True)
class _Counter:
    """What this process knows of one counter: its Redis keys and script arguments
    (worked out once), its checks in the current second and the one before, the hits
    it took ahead (if any), and the call taking more, if one is on its way."""

    items: Sequence[RateLimitItem]
    keys: tuple[str, ...]
    args: tuple[int, ...]  # limit and window seconds per item
    refills: tuple[float, ...]  # seconds a token bucket takes to give back one hit, per item
    second: int = 0
    now: int = 0
    last: int = 0
    lease: _Lease | None = None
    taking: asyncio.Event | None = None  # set when the call taking hits ahead answered
    waiting: int = 0  # checks waiting for that call

    def seen(self, second: int) -> None:
        if second != self.second:
            self.last = self.now if second == self.second + 1 else 0
            self.second, self.now = second, 0
        self.now += 1


_Check = tuple[_Counter, int]  # a counter, and the hits to take ahead with this check


class RedisBackend:
    """Either strategy's script on a shared Redis: one round trip per request, at most.

    Checks arriving together (the requests of one event-loop turn) share that round trip:
    they go out as one pipeline, with one script call per counter, however many of its
    requests arrived (a burst is one call asking for that many hits, granted in order).

    A busy counter with a high limit (a service's API key, a bench) also takes a few
    hits ahead, about 50 ms of its traffic and at most 1 % of its limit, and spends them
    without a round trip until they run out or lapse; its checks arriving while such a
    call is out wait for it rather than send one each. Hits are counted in Redis when
    they are taken, so replicas never let more through than the limit; a replica's
    unspent hits lapse unused, so the others may be refused up to 1 % early. Each check
    still gets the headers it would have got alone (remaining, reset), and a limit
    under 200 is never leased: it stays exact.
    """

    def __init__(
        self, redis: Redis, *, strategy: str, prefix: str, max_counters: int = 10_000
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}{strategy}:"
        self.script = redis.register_script(
            SLIDING_SCRIPT if strategy == "sliding" else BUCKET_SCRIPT
        )
        self.refills = strategy == "token_bucket"
        self.checks: Coalescer[_Check, _Granted] = Coalescer(self._flush)
        # By caller key, least recently used first; bounded: a counter forgotten loses
        # its demand and its unspent hits (they lapse).
        self.counters: OrderedDict[str, _Counter] = OrderedDict()
        self.max_counters = max_counters
        self._loop: asyncio.AbstractEventLoop | None = None

    def _counter(self, key: str, items: Sequence[RateLimitItem]) -> _Counter:
        """``key``'s counter for ``items``: the one known, else a new one (a key has one
        set of limits at a time, so other limits replace its counter)."""
        counter = self.counters.get(key)
        if counter is not None:
            self.counters.move_to_end(key)
            if counter.items is items:
                return counter
        keys = tuple(self.prefix + item.key_for(key) for item in items)
        if counter is not None and counter.keys == keys:
            counter.items = items  # the same limits, parsed again
            return counter
        args: list[int] = []
        for item in items:
            args += [item.amount, item.get_expiry()]
        refills = tuple(item.get_expiry() / item.amount if self.refills else 0.0 for item in items)
        counter = self.counters[key] = _Counter(items, keys, tuple(args), refills)
        if len(self.counters) > self.max_counters:
            self.counters.popitem(last=False)
        return counter

    async def acquire(self, key: str, items: Sequence[RateLimitItem]) -> Decision:
        """Run the script over one key per item (or spend a hit taken ahead)."""
        now = time.monotonic()
        counter = self._counter(key, items)
        counter.seen(int(now))
        decision = self._spend(counter, now)
        if decision is not None:
            return decision
        taking = counter.taking
        if taking is not None and self._loop is asyncio.get_running_loop():
            # Hits are being taken ahead for this counter: one of them is this check's.
            counter.waiting += 1
            try:
                await taking.wait()
            finally:
                counter.waiting -= 1
            decision = self._spend(counter, time.monotonic())
            if decision is not None:
                return decision
            # None left (refused, or spent by others): this check asks for its own at
            # once, with the others of this turn, rather than wait again in turns.
            reply, after = await self.checks.submit((counter, 0))
            return self._decide(counter, reply, after, 0.0)
        ahead = self._ahead(counter)
        if not ahead:
            reply, after = await self.checks.submit((counter, 0))
            return self._decide(counter, reply, after, 0.0)
        # This check's call takes hits ahead: the counter's next checks wait for them
        # rather than send calls of their own (each taking more ahead again).
        counter.taking = taking = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # an event is bound to its loop
        try:
            reply, after = await self.checks.submit((counter, ahead))
        finally:
            counter.taking = None
            taking.set()
        return self._decide(counter, reply, after, 0.0)

    def _spend(self, counter: _Counter, now: float) -> Decision | None:
        """The decision of a hit taken ahead, if ``counter`` has one left (None: ask Redis)."""
        lease = counter.lease
        if lease is None:
            return None
        if lease.left > 0 and now < lease.until:
            lease.left -= 1
            return self._decide(counter, lease.reply, lease.left, now - lease.at)
        counter.lease = None
        return None

    def _decide(self, counter: _Counter, reply: list[int], after: int, elapsed: float) -> Decision:
        """The decision for a hit with ``after`` hits granted after it (-1: refused), from
        a reply ``elapsed`` seconds old: it saw that many more left, as if alone."""
        ahead = max(after, 0)
        if len(counter.args) == 2:  # one limit, the common case: no search for the tightest
            remaining, reset_ms, retry_ms = reply[1:4]
            return Decision(
                after >= 0, counter.args[0], int(remaining) + ahead,
                max(0.0, reset_ms / 1000 - ahead * counter.refills[0] - elapsed),
                0.0 if ahead > 0 or retry_ms == 0 else retry_ms / 1000,
            )  # fmt: skip
        decisions = []
        for index, refill in enumerate(counter.refills):
            remaining, reset_ms, retry_ms = reply[1 + 3 * index : 4 + 3 * index]
            decisions.append(
                Decision(ahead > 0 or retry_ms == 0, counter.args[2 * index],
                         int(remaining) + ahead,
                         max(0.0, reset_ms / 1000 - ahead * refill - elapsed),
                         retry_ms / 1000)
            )  # fmt: skip
        return _tightest(decisions, after >= 0)

    def _ahead(self, counter: _Counter) -> int:
        """How many hits to take ahead for ``counter``."""
        share = min(counter.args[::2]) // LEASE_SHARE
        if share < 2:
            return 0  # a small limit stays exact
        # Its checks in the last second, or in this one so far when more: a counter
        # busy since this second began (after a quiet one) takes hits ahead at once.
        demand = max(counter.last, counter.now)
        return min(share, LEASE_MAX, int(demand * LEASE_SECONDS))

    async def _flush(self, checks: list[_Check]) -> list[_Granted | BaseException]:
        """One script call per counter in ``checks`` (asking for as many hits as it has
        checks, and those it takes ahead), all in one round trip; each check's reply."""
        places: dict[tuple[str, ...], list[int]] = {}
        for index, (counter, _) in enumerate(checks):
            places.setdefault(counter.keys, []).append(index)
        calls = []
        for keys, indexes in places.items():
            counter = checks[indexes[0]][0]
            ahead = max(checks[index][1] for index in indexes)
            if ahead:  # hits for the checks waiting on this call too (a burst)
                ahead += counter.waiting
            calls.append((list(keys), [len(indexes) + ahead, *counter.args]))
        if len(calls) == 1:
            replies: list[Any] = [await self.script(keys=calls[0][0], args=calls[0][1])]
        else:
            replies = await self._pipelined(calls)
        now = time.monotonic()
        outcomes: list[_Granted | BaseException] = [RedisError()] * len(checks)
        for (_, indexes), reply in zip(places.items(), replies, strict=True):
            if isinstance(reply, Exception):
                for index in indexes:
                    outcomes[index] = reply
                continue
            granted = int(reply[0])
            for place, index in enumerate(indexes):
                outcomes[index] = (reply, granted - 1 - place if place < granted else -1)
            if granted > len(indexes):
                checks[indexes[0]][0].lease = _Lease(
                    granted - len(indexes), reply, now, now + LEASE_SECONDS
                )
        return outcomes

    async def _pipelined(self, calls: list[tuple[list[str], list[int]]]) -> list[Any]:
        """The script's replies (or errors) for ``calls``, in one round trip.

        EVALSHA is sent as a plain command: a script registered on the pipeline would
        cost a ``SCRIPT EXISTS`` round trip on every batch. A Redis that lost its
        scripts (restart, ``SCRIPT FLUSH``) runs none of them: it is given the script
        and those calls are sent again.
        """
        replies = await self._evalsha(calls)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            await self.redis.script_load(self.script.script)
            again = await self._evalsha([calls[i] for i in lost])
            for i, reply in zip(lost, again, strict=True):
                replies[i] = reply
        return replies

    async def _evalsha(self, calls: list[tuple[list[str], list[int]]]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self.script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))


class RateLimiter:
    """Decides whether a request may go on, and labels its response."""

    def __init__(
        self, *, default: str, login: str, backend: Backend, guard: StorageGuard | None = None
    ) -> None:
        self.default = default
        self.login = login
        self.backend = backend
        self.guard = guard  # only a shared store can fail
        self._parsed: dict[str, list[RateLimitItem]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None) -> RateLimiter:
        """Shared through ``redis`` when given, else in this process."""
        gateway = settings.gateway
        strategy = gateway.rate_limit_strategy
        if redis is not None:
            return cls(
                default=gateway.rate_limit,
                login=gateway.login_rate_limit,
                backend=RedisBackend(redis, strategy=strategy, prefix=gateway.rate_limit_prefix),
                guard=StorageGuard("ratelimit"),
            )
        memory: Backend = MemorySliding() if strategy == "sliding" else MemoryTokenBucket()
        return cls(default=gateway.rate_limit, login=gateway.login_rate_limit, backend=memory)

    def _items(self, notation: str) -> list[RateLimitItem]:
        items = self._parsed.get(notation)
        if items is None:
            items = self._parsed[notation] = parse_many(notation) if notation else []
        return items

    def bucket(
        self, scope: Scope, route: Route, principal: Principal | None
    ) -> tuple[str, list[RateLimitItem]]:
        """The counter this request goes to and its limits (none: not limited)."""
        if scope["path"] == LOGIN_PATH and scope.get("method") == "POST" and self.login:
            return f"login/ip:{client_ip(scope)}", self._items(self.login)
        if route.rate_limit is not None:
            return f"route:{route.prefix}/{caller_id(principal, scope)}", self._items(
                route.rate_limit
            )
        return f"all/{caller_id(principal, scope)}", self._items(self.default)

    async def check(
        self, scope: Scope, route: Route, principal: Principal | None, send: Send
    ) -> Send:
        """Count the request: raise :class:`RateLimited` past the limit, else return a
        ``send`` that adds the ``RateLimit-*`` headers to the response. A WebSocket counts
        once, when it opens (a refused one is closed with 4429)."""
        if scope["type"] not in ("http", "websocket"):
            return send
        decision = await self.decide(scope, route, principal)
        if decision is None or scope["type"] == "websocket":
            return send
        extra = decision.raw_headers()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return send_with_headers

    async def decide(
        self, scope: Scope, route: Route, principal: Principal | None
    ) -> Decision | None:
        """Count the request: raise :class:`RateLimited` past the limit, else the
        decision whose headers the answer carries (None: not counted, no headers)."""
        key, items = self.bucket(scope, route, principal)
        if not items:
            return None
        if self.guard is not None and not self.guard.available():
            return None
        try:
            decision = await self.backend.acquire(key, items)
        except (RedisError, OSError, TimeoutError) as exc:
            if self.guard is None:
                raise
            self.guard.failed(exc)
            return None
        if not decision.allowed:
            headers = decision.headers()
            GATEWAY_RATE_LIMITED.labels(route.prefix).inc()
            tracing.add_event(
                "rate_limited",
                {"orchestrion.rate_limit.limit": decision.limit,
                 "orchestrion.rate_limit.retry_after": decision.retry_after},
            )  # fmt: skip
            retry = str(max(1, math.ceil(decision.retry_after)))
            raise RateLimited(
                f"rate limit of {decision.limit} exceeded; retry in {retry}s",
                headers={**headers, "Retry-After": retry},
            )
        return decision
