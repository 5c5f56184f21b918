"""The gateway's response cache for GET/HEAD, with RFC 9111 semantics, per caller.

It wraps the forward call (``await cache.handle(scope, receive, send, forward, vary_key)``)
and does not care how the service is reached. Only routes with a ``cache_ttl`` use it.

- Keys vary by caller (tenant, principal, rights), path and query, and by the request
  headers the service's ``Vary`` names: one tenant never sees another's answer, so
  ``private`` responses are cacheable too.
- Freshness comes from the service's ``Cache-Control`` (``s-maxage``, ``max-age``),
  ``Expires``, else the route's ``cache_ttl``; ``no-store`` is never stored,
  ``no-cache`` is stored but revalidated on every use.
- A stale entry with an ``ETag`` is revalidated with ``If-None-Match``; a 304 refreshes it.
- Bodies are streamed to the client while they are copied; past ``cache_max_body_bytes``
  the copy stops and the response is not stored.
- A successful POST/PUT/PATCH/DELETE drops the entries of its path, of its parent
  collection and of its ``Location``, for every caller and query.

Responses of these routes carry ``X-Cache: HIT`` or ``MISS``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import Message, Receive, Scope, Send

from orchestrion.gateway.policies.cachestore import CacheStore, MemoryStore, Record, RedisStore
from orchestrion.gateway.policies.entry import (
    Entry,
    cache_control,
    etag_matches,
    freshness,
    header,
    not_modified_headers,
    stored_headers,
    variant_of,
)
from orchestrion.gateway.policies.shared import StorageGuard
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.observability.metrics import GATEWAY_CACHE
from orchestrion.settings import Settings

logger = logging.getLogger("orchestrion.gateway")
Forward = Callable[[Scope, Receive, Send], Awaitable[None]]
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since"})
STORE_ERRORS = (RedisError, OSError, TimeoutError)


class ResponseCache:
    """Looks up, stores, revalidates and invalidates cached responses."""

    def __init__(
        self,
        store: CacheStore,
        *,
        max_body: int,
        stale_seconds: float,
        guard: StorageGuard | None = None,
    ) -> None:
        self.store = store
        self.max_body = max_body
        self.stale_seconds = stale_seconds
        self.guard = guard  # only a shared store can fail

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None) -> ResponseCache:
        """Shared through ``redis`` when given, else in this process."""
        gateway = settings.gateway
        if redis is not None:
            store: CacheStore = RedisStore(redis, prefix=gateway.cache_prefix)
            guard: StorageGuard | None = StorageGuard("cache")
        else:
            store, guard = MemoryStore(gateway.cache_max_bytes), None
        return cls(
            store,
            max_body=gateway.cache_max_body_bytes,
            stale_seconds=gateway.cache_stale_seconds,
            guard=guard,
        )

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        forward: Forward,
        vary_key: str,
        *,
        ttl: float = 0.0,
    ) -> None:
        """Answer from the cache, or forward (storing or invalidating as the method asks).

        ``ttl`` is the route's default freshness in seconds when the service gives none.
        """
        method = scope["method"]
        if method in UNSAFE:
            await self._write(scope, receive, send, forward)
            return
        if method not in ("GET", "HEAD") or scope["type"] != "http":
            await forward(scope, receive, send)
            return
        label = scope.get("orchestrion.route", "")
        asked = cache_control(header(scope["headers"], b"cache-control"))
        key = f"{vary_key}|{scope['path']}?{scope.get('query_string', b'').decode('latin-1')}"
        record = None if "no-store" in asked else await self._get(key)
        entry = _select(record, scope)
        client_etags = header(scope["headers"], b"if-none-match")
        revalidate = "no-cache" in asked or asked.get("max-age") == "0"
        if entry is not None and not revalidate and entry.fresh():
            GATEWAY_CACHE.labels(label, "hit").inc()
            tracing.set_attributes({"orchestrion.gateway.cache": "hit"})
            await _serve(entry, scope, send, client_etags)
            return
        GATEWAY_CACHE.labels(label, "miss").inc()
        tracing.set_attributes({"orchestrion.gateway.cache": "miss"})
        if method == "HEAD" or "no-store" in asked:
            await forward(scope, receive, _labelled(send, b"MISS"))
            return
        # The cache needs the full answer to store, not the client's 304: it asks
        # without the client's conditions and applies them itself.
        headers = [(k, v) for k, v in scope["headers"] if k not in CONDITIONAL]
        validating = entry if entry is not None and entry.etag else None
        if entry is not None and entry.etag:
            headers.append((b"if-none-match", entry.etag.encode("latin-1")))
        tee = _Tee(send, ttl, self.max_body, client_etags, validating is not None)
        await forward({**scope, "headers": headers}, receive, tee)
        if validating is not None and tee.status == 304:
            refreshed = validating.refreshed(tee.headers, ttl)
            await _serve(refreshed, scope, send, client_etags)
            if refreshed.lifetime is not None:
                await self._put(scope, key, refreshed)
        elif tee.entry is not None:
            await self._put(scope, key, tee.entry)

    async def _write(self, scope: Scope, receive: Receive, send: Send, forward: Forward) -> None:
        status = 0
        location: str | None = None

        async def watch(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = int(message["status"])
                location = header(message.get("headers", []), b"location")
            await send(message)

        await forward(scope, receive, watch)
        if 0 < status < 400:
            await self.invalidate(_affected(scope["path"], location))

    async def invalidate(self, paths: list[str]) -> None:
        """Forget every cached response of ``paths`` (every caller, every query)."""
        if self.guard is not None and not self.guard.available():
            return
        try:
            await self.store.invalidate(paths)
        except STORE_ERRORS as exc:
            self._failed(exc)

    async def _get(self, key: str) -> Record | None:
        if self.guard is not None and not self.guard.available():
            return None
        try:
            return await self.store.get(key)
        except STORE_ERRORS as exc:
            self._failed(exc)
            return None

    async def _put(self, scope: Scope, key: str, entry: Entry) -> None:
        lifetime = entry.lifetime or 0.0
        keep = lifetime + (self.stale_seconds if entry.etag else 0.0)
        if keep <= 0 or (self.guard is not None and not self.guard.available()):
            return
        vary = entry.vary
        try:
            await self.store.put(
                scope["path"], key, vary=vary, variant=variant_of(vary, scope["headers"]),
                value=entry.dumps(), ttl=keep,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if self.guard is None:
            raise exc
        self.guard.failed(exc)


def _select(record: Record | None, scope: Scope) -> Entry | None:
    if record is None:
        return None
    raw = record.variants.get(variant_of(record.vary, scope["headers"]))
    return Entry.loads(raw) if raw is not None else None


def _affected(path: str, location: str | None) -> list[str]:
    """The path, its parent collection, and a ``Location`` on this gateway."""
    paths = [path]
    parent = path.rstrip("/").rsplit("/", 1)[0]
    if parent:
        paths.append(parent)
    if location and location.startswith("/") and not location.startswith("//"):
        paths.append(location.split("?", 1)[0])
    return list(dict.fromkeys(paths))


def _labelled(send: Send, value: bytes) -> Send:
    async def send_labelled(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"x-cache", value)]}
        await send(message)

    return send_labelled


async def _serve(entry: Entry, scope: Scope, send: Send, client_etags: str | None) -> None:
    """Answer from ``entry``: a 304 when the client already has it."""
    age = str(int(entry.age())).encode()
    if entry.etag and etag_matches(client_etags, entry.etag):
        headers = not_modified_headers(entry.headers)
        await send({"type": "http.response.start", "status": 304,
                    "headers": [*headers, (b"age", age), (b"x-cache", b"HIT")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [
        *entry.headers,
        (b"content-length", str(len(entry.body)).encode()),
        (b"age", age),
        (b"x-cache", b"HIT"),
    ]
    await send({"type": "http.response.start", "status": entry.status, "headers": headers})
    body = b"" if scope["method"] == "HEAD" else entry.body
    await send({"type": "http.response.body", "body": body})


@dataclass
class _Tee:
    """Passes the service's answer on while copying what may be stored.

    A 304 answering the cache's own revalidation is swallowed (the caller serves the
    refreshed entry); a 200 whose ETag the client already holds becomes a 304.
    """

    send: Send
    ttl: float
    max_body: int
    client_etags: str | None
    validating: bool
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    entry: Entry | None = None
    _chunks: list[bytes] | None = None
    _size: int = 0
    _to_304: bool = False
    _swallow: bool = False
    _lifetime: float | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body":
            await self._body(message)
        elif not self._swallow:
            await self.send(message)

    async def _start(self, message: Message) -> None:
        self.status = int(message["status"])
        self.headers = list(message.get("headers", []))
        if self.validating and self.status == 304:
            self._swallow = True
            return
        self._lifetime = freshness(self.status, self.headers, self.ttl, self.max_body)
        if self._lifetime is not None:
            self._chunks = []
        etag = header(self.headers, b"etag")
        if self.status == 200 and etag and etag_matches(self.client_etags, etag):
            self._to_304 = True
            headers = not_modified_headers(stored_headers(self.headers))
            await self.send({"type": "http.response.start", "status": 304,
                             "headers": [*headers, (b"x-cache", b"MISS")]})  # fmt: skip
            return
        await self.send({**message, "headers": [*self.headers, (b"x-cache", b"MISS")]})

    async def _body(self, message: Message) -> None:
        if self._swallow:
            return
        chunk = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self._chunks is not None:
            self._size += len(chunk)
            if self._size > self.max_body:
                self._chunks = None  # too big: streams through, uncached
            else:
                self._chunks.append(chunk)
        if self._to_304:
            if not more:
                await self.send({"type": "http.response.body", "body": b""})
        else:
            await self.send(message)
        if not more and self._chunks is not None:
            self.entry = Entry.build(
                self.status, self.headers, b"".join(self._chunks), self._lifetime
            )
