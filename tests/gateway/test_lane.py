"""The fast lane (gateway/lane.py) answers as the ASGI path does, byte for byte.

Two embedded platforms (the same template, the same gateway config), each served as
``orchestrion up`` serves one (``cli._uvicorn_config``: the gateway's HTTP protocol,
``DateHeader``), one with ``fast_lane`` on and one with it off, in front of one real
upstream on loopback that records what it receives; the rate limit on the local Redis
(each gateway its own keys). The same raw requests go to both over real sockets: the
answers must be the same bytes (the generated request ids, the dates and the
rate limit's reset second aside), and so must what the upstream saw and the metrics
each run added.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import pytest
import pytest_asyncio
import uvicorn
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from orchestrion.cli import _uvicorn_config
from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.fixtures.databases import copy_template
from tests.fixtures.processes import free_port
from tests.gateway.conftest import REDIS_URL

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]

CONFIG = """
upstreams:
  svc: {{instances: ["http://127.0.0.1:{port}"], health: {{interval: 0}}}}
  dead: {{instances: ["http://127.0.0.1:{dead}"], health: {{interval: 0}}}}
routes:
  - {{prefix: /svc, service: svc}}
  - {{prefix: /open, service: svc, public: true}}
  - {{prefix: /tight, service: svc, public: true, rate_limit: 2/minute}}
  - {{prefix: /locked, service: svc, permission: "nobody:has-this"}}
  - {{prefix: /dead, service: dead, public: true}}
  - {{prefix: /cached, service: svc, public: true, cache_ttl: 10}}
"""
BIG = b"x" * 100_000


# --- the upstream ------------------------------------------------------------------------


@dataclass
class Upstream:
    """A raw ASGI upstream: what it answers depends on the path's last segment."""

    seen: list[tuple[str, str, str, list[tuple[str, str]]]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        what = scope["path"].rsplit("/", 1)[-1]
        if scope["path"] != "/health/live":
            headers = [(k.decode(), v.decode("latin-1")) for k, v in scope["headers"]]
            query = scope["query_string"].decode()
            self.seen.append((scope["method"], scope["raw_path"].decode(), query, headers))
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        if what == "big":
            await _answer(send, 200, [(b"content-type", b"text/plain")], BIG)
        elif what == "stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"one,", b"two,", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif what == "empty":
            await _answer(send, 204, [], b"")
        elif what == "fail":
            await _answer(send, 503, [(b"content-type", b"text/plain")], b"not now")
        elif what == "echo":  # as the platform's services: the id it was given, a Date
            extra = [(b"x-request-id", given), (b"Date", b"Sun, 06 Nov 1994 08:49:37 GMT")]
            await _answer(send, 200, [(b"X-Custom", b"A"), (b"x-custom", b"b"), *extra], b"{}")
        else:
            await _answer(send, 200, [(b"content-type", b"application/json")], b'{"ok":true}')


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    length = [(b"content-length", str(len(body)).encode())] if status != 204 else []
    await send({"type": "http.response.start", "status": status, "headers": headers + length})
    await send({"type": "http.response.body", "body": body})


class _Server:
    """An ASGI app under uvicorn in this loop, on its own socket."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Server:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        async with asyncio.timeout(120):
            while not self.server.started:
                if self.task.done():
                    self.task.result()
                    pytest.fail("the server stopped while starting")
                await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.sock.close()


@dataclass
class Pair:
    """The two gateways, the upstream behind them, and a token for each."""

    upstream: Upstream
    on: int
    off: int
    tokens: dict[int, str]
    edges: dict[int, Any]
    lane_served: list[int]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[Pair]:
    """Both gateways, lane on and off, logged in."""
    upstream = Upstream()
    upstream_config = uvicorn.Config(upstream, lifespan="off", log_level="warning")
    redis = Redis.from_url(REDIS_URL)
    prefix = f"orn-test:{uuid.uuid4().hex[:12]}:"
    async with _Server(upstream_config) as up:
        root = tmp_path_factory.mktemp("lane")
        (root / "gateway.yaml").write_text(CONFIG.format(port=up.port, dead=free_port()))
        servers, edges = [], []
        for lane in (True, False):
            directory = root / ("on" if lane else "off")
            database = copy_template(sqlite_template, directory / "data")
            settings = make_settings(
                directory,
                f"sqlite+aiosqlite:///{database}",
                host="127.0.0.1",
                redis={"url": REDIS_URL},
                realtime={"redis_url": ""},
                auth={"revocation_key": f"{prefix}{lane}:revoked"},
                observability={"access_log": False},
                gateway={
                    "config": root / "gateway.yaml",
                    "fast_lane": lane,
                    "rate_limit": "100/minute",
                    "rate_limit_prefix": f"{prefix}{lane}:rl:",
                    "cache_prefix": f"{prefix}{lane}:cache:",
                },
            )
            app = create_embedded_app(settings)
            edges.append(app)
            servers.append(_Server(_uvicorn_config(app, settings, gateway=True)))
        async with servers[0] as on, servers[1] as off:
            served: list[int] = []
            lane = edges[0].lane
            assert lane is not None
            assert edges[1].lane is None
            serve = lane.serve

            async def counted(cycle: Any) -> None:
                served.append(1)
                await serve(cycle)

            lane.serve = counted
            tokens = {port: await _login(port) for port in (on.port, off.port)}
            yield Pair(
                upstream, on.port, off.port, tokens, {on.port: edges[0], off.port: edges[1]},
                served,
            )  # fmt: skip
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _login(port: int) -> str:
    body = f'{{"email": "{ADMIN_EMAIL}", "password": "{ADMIN_PASSWORD}"}}'.encode()
    raw = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )
    answer = await _exchange(port, raw)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    token = re.search(rb'"access_token":\s*"([^"]+)"', answer)
    assert token is not None
    return token.group(1).decode()


# --- talking to a gateway ----------------------------------------------------------------


async def _exchange(port: int, raw: bytes) -> bytes:
    """Write ``raw`` on a new connection; everything read until the gateway closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(60):
            return await reader.read(-1)
    finally:
        writer.close()


async def _one_by_one(port: int, requests: list[bytes]) -> list[bytes]:
    """Each request on one kept-alive connection once the answer before it is whole."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for raw in requests:
            client = h11.Connection(h11.CLIENT)
            method = raw.split(b" ", 1)[0].decode()
            client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
            writer.write(raw)
            await writer.drain()
            got = bytearray()
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    async with asyncio.timeout(60):
                        chunk = await reader.read(65536)
                    got += chunk
                    client.receive_data(chunk)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            answers.append(bytes(got))
    finally:
        writer.close()
    return answers


def _request(method: str, target: str, token: str | None, *extra: str, close: bool = True) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "host: gateway.test", "user-agent: lane-test"]
    if token is not None:
        lines.append(f"authorization: Bearer {token}")
    lines += extra
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_GENERATED = re.compile(rb"(?im)^(date|x-request-id|ratelimit-reset): (?!given-)[^\r\n]*")
_PROBLEM_ID = re.compile(rb'"request_id": "(?!given-)[^"]*"')


def _masked(raw: bytes) -> bytes:
    """``raw`` without what differs between two runs: generated ids, dates, the reset."""
    return _PROBLEM_ID.sub(b'"request_id": "*"', _GENERATED.sub(rb"\1: *", raw))


def _seen(upstream: Upstream) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    masked = {"x-request-id", "x-orchestrion-identity", "authorization"}
    return [
        (method, path, query, [(k, "*" if k in masked else v) for k, v in headers])
        for method, path, query, headers in upstream.seen
    ]


_METRICS = (
    "orchestrion_http_requests",
    "orchestrion_http_request_duration_seconds",
    "orchestrion_gateway_upstream_duration_seconds",
    "orchestrion_gateway_upstream_retries",
    "orchestrion_gateway_rate_limited",
)


def _counts() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    counts = {}
    for family in REGISTRY.collect():
        if family.name not in _METRICS:
            continue
        for sample in family.samples:
            if sample.name.endswith(("_total", "_count")):
                counts[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return counts


async def _both(
    pair: Pair, run: Callable[[int, str], Awaitable[list[bytes]]]
) -> tuple[list[bytes], list[bytes]]:
    """``run`` against the lane's gateway, then the other; their answers, after checking
    that the upstream saw the same and the metrics moved the same."""
    results, seen, moved = [], [], []
    for port in (pair.on, pair.off):
        pair.upstream.seen.clear()
        before = _counts()
        results.append([_masked(a) for a in await run(port, pair.tokens[port])])
        await asyncio.sleep(0.05)  # a metric recorded as the answer went out
        after = _counts()
        moved.append({k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k)})
        seen.append(_seen(pair.upstream))
        gateway = pair.edges[port].app
        assert gateway.in_flight == {}, "a request left counted in flight"
    assert seen[0] == seen[1]
    assert moved[0] == moved[1]
    return results[0], results[1]


# --- the tests -------------------------------------------------------------------------


MATRIX: list[tuple[str, str, bool, tuple[str, ...]]] = [
    ("GET", "/svc/plain", True, ()),
    ("GET", "/svc/plain?q=1&r=%20two", True, ()),
    ("GET", "/svc/with%20space/plain", True, ()),
    ("GET", "/svc/echo", True, ()),
    ("GET", "/svc/echo", True, ("x-request-id: given-abc-123",)),
    ("GET", "/svc/big", True, ()),
    ("GET", "/svc/stream", True, ()),
    ("GET", "/svc/empty", True, ()),
    ("GET", "/svc/fail", True, ()),
    ("DELETE", "/svc/plain", True, ()),
    ("OPTIONS", "/svc/plain", True, ()),
    ("HEAD", "/svc/plain", True, ()),
    ("HEAD", "/svc/big", True, ()),
    ("GET", "/svc/plain", False, ()),  # 401
    ("GET", "/svc/plain", True, ("authorization: Bearer not-a-token",)),  # two: the first counts
    ("GET", "/open/plain", False, ("authorization: Bearer stale",)),  # public: anonymous
    ("GET", "/locked/plain", True, ()),  # 403
    ("GET", "/nowhere", True, ()),  # 404 (the ASGI path on both)
    ("GET", "/dead/plain", False, ()),  # nobody listens: 503
    ("GET", "/cached/plain", False, ()),  # cached route: the ASGI path on both
    ("POST", "/svc/plain", True, ("content-length: 2", "content-type: application/json")),
    ("GET", "/svc/plain", True, (
        "x-orchestrion-identity: forged", "x-forwarded-for: 6.6.6.6", "forwarded: for=1.2.3.4",
        "te: trailers", "connection: close, x-drop-me", "x-drop-me: 1", "keep-alive: 5",
        "cookie: a=1", "cookie: b=2",
    )),
    ("GET", "/svc/plain", True, ("expect: 100-continue",)),
]  # fmt: skip


async def test_each_request_is_answered_the_same(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    async def run(port: int, token: str) -> list[bytes]:
        answers = []
        for method, target, signed, extra in MATRIX:
            raw = _request(method, target, token if signed else None, *extra)
            if method == "POST":
                raw += b"{}"
            answers.append(await _exchange(port, raw))
        return answers

    before = len(pair.lane_served)
    on, off = await _both(pair, run)
    assert len(pair.lane_served) - before >= 10, "the lane served too few of them"
    for (method, target, _, extra), a, b in zip(MATRIX, on, off, strict=True):
        assert a == b, f"{method} {target} {extra}:\nlane: {a[:600]!r}\nasgi: {b[:600]!r}"
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == [], "an answer failed on one of the paths"
    statuses = [int(a.split(b" ", 2)[1]) for a in on]
    assert statuses[:9] == [200, 200, 200, 200, 200, 200, 200, 204, 503]
    assert statuses[13:19] == [401, 200, 200, 403, 404, 503]


async def test_kept_alive_answers_one_by_one(pair: Pair) -> None:
    async def run(port: int, token: str) -> list[bytes]:
        requests = [
            _request("GET", "/svc/plain", token, close=False),
            _request("HEAD", "/svc/big", token, close=False),
            _request("GET", "/svc/stream", token, close=False),
            _request("GET", "/svc/plain", None, close=False),  # 401, still kept alive
            _request("GET", "/nowhere", token, close=False),  # the ASGI path in between
            _request("GET", "/svc/echo", token),
        ]
        return await _one_by_one(port, requests)

    before = len(pair.lane_served)
    on, off = await _both(pair, run)
    assert on == off
    assert len(pair.lane_served) - before == 5
    assert all(b"connection: close" not in a for a in on[:-1])
    assert b"connection: close" in on[-1]


async def test_pipelined_requests_are_answered_in_order(pair: Pair) -> None:
    async def run(port: int, token: str) -> list[bytes]:
        raw = b"".join(
            [
                _request("GET", "/svc/big", token, close=False),
                _request("GET", "/svc/plain?n=1", token, close=False),
                _request("POST", "/svc/plain", token, "content-length: 0", close=False),
                _request("HEAD", "/svc/plain", token, close=False),
                _request("GET", "/svc/stream", token, close=False),
                _request("GET", "/svc/plain?n=2", token),
            ]
        )
        return [await _exchange(port, raw)]

    (on,), (off,) = await _both(pair, run)
    assert on == off
    assert on.count(b"HTTP/1.1 200 OK") == 6
    assert pair.upstream.seen[1][2] == "n=1"
    assert pair.upstream.seen[-1][2] == "n=2"


async def test_http_1_0_closes_after_its_answer(pair: Pair) -> None:
    async def run(port: int, token: str) -> list[bytes]:
        plain = f"GET /svc/plain HTTP/1.0\r\nauthorization: Bearer {token}\r\n\r\n"
        kept = (
            f"GET /svc/stream HTTP/1.0\r\nauthorization: Bearer {token}\r\n"
            "connection: keep-alive\r\n\r\n"
        )
        return [await _exchange(port, plain.encode()), await _exchange(port, kept.encode())]

    on, off = await _both(pair, run)
    assert on == off
    assert all(b"connection: close" in a for a in on)


async def test_the_rate_limit_refuses_the_same(pair: Pair) -> None:
    async def run(port: int, _: str) -> list[bytes]:
        return [await _exchange(port, _request("GET", "/tight/plain", None)) for _ in range(3)]

    on, off = await _both(pair, run)
    assert on == off
    assert [a.split(b"\r\n", 1)[0] for a in on] == [
        b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 429 Too Many Requests",
    ]  # fmt: skip
    assert b"ratelimit-remaining: 0" in on[1]
    assert b"retry-after: " in on[2]
