"""A cached response and the RFC 9111 rules around it: what may be stored, for how long,
which request headers select it, and when a client's ``If-None-Match`` already holds it."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

Headers = list[tuple[bytes, bytes]]

# Statuses cacheable by default (RFC 9110 §15.1), less 206 (no ranges here) and the
# error statuses a transient fault could produce.
STORABLE = frozenset({200, 203, 204, 300, 301, 308, 404, 410})
# Never replayed from the cache: per connection, per request, or set on the way out.
UNSTORED = frozenset(
    {
        b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"age",
        b"x-request-id", b"x-cache", b"ratelimit-limit", b"ratelimit-remaining",
        b"ratelimit-reset", b"retry-after", b"set-cookie", b"trailer", b"upgrade",
    }
)  # fmt: skip
NOT_MODIFIED = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary"}
)


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The values of ``name`` joined as one list (None when absent)."""
    values = [v.decode("latin-1") for k, v in headers if k.lower() == name]
    return ", ".join(values) if values else None


def cache_control(value: str | None) -> dict[str, str | None]:
    """``Cache-Control`` directives, names lowercased, quotes dropped."""
    directives: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, has_value, arg = part.strip().partition("=")
        if name:
            directives[name.lower()] = arg.strip().strip('"') if has_value else None
    return directives


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(int(value or "0")))
    except ValueError:
        return 0.0  # an invalid lifetime is treated as already stale


def _expires(headers: Headers) -> float | None:
    value = header(headers, b"expires")
    if value is None:
        return None
    try:
        expires = parsedate_to_datetime(value).timestamp()
        date = header(headers, b"date")
        base = parsedate_to_datetime(date).timestamp() if date else time.time()
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, expires - base)


def freshness(status: int, headers: Headers, default: float, max_body: int) -> float | None:
    """Seconds the response stays fresh; None when it must not be stored."""
    directives = cache_control(header(headers, b"cache-control"))
    length = header(headers, b"content-length")
    if (
        status not in STORABLE
        or "no-store" in directives
        or (header(headers, b"vary") or "").strip() == "*"
        or header(headers, b"set-cookie") is not None
        or (header(headers, b"content-type") or "").startswith("text/event-stream")
        or (length is not None and length.isdigit() and int(length) > max_body)
    ):
        return None
    if "no-cache" in directives:
        return 0.0
    for name in ("s-maxage", "max-age"):  # a shared cache prefers s-maxage
        if name in directives:
            return _seconds(directives[name])
    expires = _expires(headers)
    return expires if expires is not None else default


def stored_headers(headers: Headers) -> Headers:
    """The headers worth replaying."""
    return [(k.lower(), v) for k, v in headers if k.lower() not in UNSTORED]


def not_modified_headers(headers: Headers) -> Headers:
    """The headers a 304 repeats (RFC 9110 §15.4.5)."""
    return [(k, v) for k, v in headers if k.lower() in NOT_MODIFIED]


def etag_matches(client: str | None, etag: str) -> bool:
    """Weak comparison of ``If-None-Match`` against ``etag``."""
    if not client:
        return False
    mine = etag.strip().removeprefix("W/")
    tags = [tag.strip().removeprefix("W/") for tag in client.split(",")]
    return "*" in tags or mine in tags


def vary_names(headers: Headers) -> str:
    """The request headers a response varies on, normalised."""
    names = {n.strip().lower() for n in (header(headers, b"vary") or "").split(",")}
    return ",".join(sorted(n for n in names if n))


def variant_of(vary: str, request_headers: Headers) -> str:
    """Which variant a request selects: a digest of its values of the ``Vary`` headers."""
    if not vary:
        return "v:"
    values = [header(request_headers, n.encode()) or "" for n in vary.split(",")]
    return "v:" + hashlib.sha256("\n".join(values).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored response."""

    status: int
    headers: Headers
    body: bytes
    stored_at: float
    initial_age: float
    lifetime: float | None

    @classmethod
    def build(cls, status: int, headers: Headers, body: bytes, lifetime: float | None) -> Entry:
        """An entry from a response just received."""
        return cls(
            status, stored_headers(headers), body, time.time(),
            _seconds(header(headers, b"age")), lifetime,
        )  # fmt: skip

    @property
    def etag(self) -> str | None:
        """The validator, if the service gave one."""
        return header(self.headers, b"etag")

    @property
    def vary(self) -> str:
        """The request headers this response varies on."""
        return vary_names(self.headers)

    def age(self) -> float:
        """Current age (RFC 9111 §4.2.3, without clock-skew correction)."""
        return self.initial_age + max(0.0, time.time() - self.stored_at)

    def fresh(self) -> bool:
        """Whether it may be served without asking the service."""
        return self.lifetime is not None and self.age() < self.lifetime

    def refreshed(self, not_modified: Headers, default: float) -> Entry:
        """The entry after a 304: its headers updated, its age reset (RFC 9111 §4.3.4)."""
        update = stored_headers(not_modified)
        names = {k for k, _ in update}
        headers = [(k, v) for k, v in self.headers if k not in names] + update
        lifetime = freshness(self.status, headers, default, len(self.body))
        return replace(
            self, headers=headers, stored_at=time.time(),
            initial_age=_seconds(header(not_modified, b"age")), lifetime=lifetime,
        )  # fmt: skip

    def dumps(self) -> bytes:
        """Meta as one JSON line, then the body."""
        meta = {
            "s": self.status,
            "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "t": self.stored_at,
            "a": self.initial_age,
            "l": self.lifetime,
        }
        return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def loads(cls, raw: bytes) -> Entry:
        """The inverse of :meth:`dumps`."""
        meta_raw, _, body = raw.partition(b"\n")
        meta = json.loads(meta_raw)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["h"]]
        return cls(meta["s"], headers, body, meta["t"], meta["a"], meta["l"])
