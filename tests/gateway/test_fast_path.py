"""The fast path (``gateway.fast_path``) against the middleware layers, on a real gateway
server: the same requests, over raw keep-alive sockets, to a gateway served as
``orchestrion gateway`` serves it (its protocol, ``Date`` and ``Server``) with the fast
path on and off, give the same bytes back (``Date`` and the rate limit's reset aside),
the same request metrics and the same access log lines.

The requests cover what the fast path serves (proxied answers, small, large, chunked and
streamed; request bodies, ``Expect: 100-continue``, HTTP/1.0, pipelining; 401, 429, 413,
an unreachable service) and what it leaves to the layers (a chunked request body, an
the gateway's own endpoints, no route), and the test checks which path served which.
With CORS configured every request takes the layers (CORS labels every answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx
import pytest
import uvicorn

from orchestrion.cli import _uvicorn_config
from orchestrion.gateway.app import Gateway, create_gateway
from orchestrion.gateway.proxy import HttpUpstream
from orchestrion.gateway.routes import Route, rule
from orchestrion.gateway.upstream import Upstream, UpstreamPolicy
from orchestrion.kernel.observability.metrics import GATEWAY_RATE_LIMITED, LATENCY, REQUESTS
from tests.conftest import make_settings
from tests.fixtures.lifespan import in_process
from tests.fixtures.processes import free_port
from tests.fixtures.upstream import Upstream as Loopback
from tests.gateway.conftest import SharedRedis

pytestmark = pytest.mark.timeout(180)

PUBLIC = (rule("*", r".*", None),)
MAX_BODY = 100_000


def _request(
    method: str, target: str, *headers: str, body: bytes = b"", version: str = "1.1"
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "host: gateway", *headers]
    if body and not any(
        h.lower().startswith(("content-length", "transfer-encoding")) for h in headers
    ):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _id(n: int) -> str:
    return f"x-request-id: fast-path-{n}"


# Each entry: one connection, the bytes sent on it (at once: the requests pipeline), and
# whether the connection ends with the last answer (the server closes it).
EXCHANGES: list[list[bytes]] = [
    # Proxied answers, keep-alive then pipelined; a client's hop-by-hop and spoofed headers.
    [
        _request("GET", "/echo/a?x=1", _id(1), "connection: keep-alive, x-drop-me",
                 "x-drop-me: 1", "x-orchestrion-identity: forged", "x-forwarded-for: 6.6.6.6"),
        _request("POST", "/echo/b", _id(2), "content-type: application/json", body=b'{"a": 1}'),
        _request("PUT", "/echo/c", _id(3), body=b"x" * 1000),
        _request("PUT", "/echo/stream", _id(7), body=b"z" * 80_000),  # streamed upstream
        _request("GET", "/status/418", _id(4)),
        _request("GET", "/status/502", _id(5)),
        _request("GET", "/echo/d", _id(6), "connection: close"),
    ],
    # Refused: no credentials, bad credentials, rate limited (2/minute), a body too large.
    [
        _request("GET", "/private/x", _id(10)),
        _request("GET", "/private/x", _id(11), "authorization: Basic abc"),
        _request("GET", "/echo/limited/1", _id(12)),
        _request("GET", "/echo/limited/2", _id(13)),
        _request("GET", "/echo/limited/3", _id(14)),
        _request("GET", "/nowhere", _id(15)),
        _request("GET", "/health/live", _id(16)),
        _request("GET", "/echo/e", "connection: close"),  # no id of its own: a new one
    ],
    [_request("POST", "/echo/big", _id(20), "connection: close", body=b"y" * (MAX_BODY + 1))],
    # An unreachable service (retried, then 503), answers streamed with and without a length.
    [
        _request("GET", "/dead/x", _id(30)),
        _request("GET", "/blob?size=200000", _id(31)),
        _request("GET", "/blob?size=150000&chunked=1", _id(32)),
        _request("GET", "/sse/fast-path?n=3&gap=0.05", _id(33), "connection: close"),
    ],
    # A chunked request body (left to the layers), then a body in one piece.
    [
        _request("POST", "/echo/f", _id(40), "transfer-encoding: chunked",
                 body=b"5\r\nhello\r\n0\r\n\r\n"),
        _request("POST", "/echo/i", _id(43), "connection: close", body=b"hello"),
    ],
    # HTTP/1.0: answered, then closed.
    [_request("GET", "/echo/j", _id(50), version="1.0")],
]  # fmt: skip

# Served by the fast path when it is on (the others by the layers).
FAST = {
    "/echo/a", "/echo/b", "/echo/c", "/echo/stream", "/status/418", "/status/502", "/echo/d",
    "/private/x",
    "/echo/limited/1", "/echo/limited/2", "/echo/limited/3", "/echo/e", "/echo/big",
    "/dead/x", "/blob", "/sse/fast-path", "/echo/i", "/echo/j", "/echo/k",
}  # fmt: skip


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


class _Answers:
    """httptools callbacks: every answer on a connection, interim ones included."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.answers: list[_Answer] = []
        self.complete = 0

    def on_message_begin(self) -> None:
        self.answers.append(_Answer(0))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.answers[-1].headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.answers[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.answers[-1].body += body

    def on_message_complete(self) -> None:
        self.complete += 1


async def _exchange(port: int, sent: bytes) -> list[_Answer]:
    """Send ``sent`` at once; every answer until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = _Answers()
    try:
        writer.write(sent)
        async with asyncio.timeout(60):
            while data := await reader.read(65536):
                answers.parser.feed_data(data)
    finally:
        writer.close()
    return answers.answers


async def _continued(port: int) -> list[_Answer]:
    """A body sent only once the gateway said ``100 Continue``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = _Answers()
    try:
        writer.write(_request("POST", "/echo/k", _id(60), "expect: 100-continue",
                              "content-length: 5", "connection: close"))  # fmt: skip
        async with asyncio.timeout(60):
            interim = await reader.readuntil(b"\r\n\r\n")
            answers.parser.feed_data(interim)
            writer.write(b"hello")
            while data := await reader.read(65536):
                answers.parser.feed_data(data)
    finally:
        writer.close()
    return answers.answers


_GENERATED_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def _normalised(answer: _Answer) -> tuple[int, list[tuple[str, str]], bytes]:
    """What must be equal: ``Date`` and the reset (clock readings) only present, a
    generated request id only its place."""
    headers = []
    for name, value in answer.headers:
        if name in ("date", "ratelimit-reset"):
            value = "<clock>"
        headers.append((name, _GENERATED_ID.sub(b"<id>", value.encode()).decode()))
    return answer.status, headers, _GENERATED_ID.sub(b"<id>", bytes(answer.body))


def _samples() -> dict[tuple[str, ...], float]:
    """The gateway's request counts and latency counts, and its 429s, by labels."""
    found: dict[tuple[str, ...], float] = {}
    for metric in (REQUESTS, LATENCY, GATEWAY_RATE_LIMITED):
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith(("_created", "_sum", "_bucket")):
                    continue
                if sample.labels.get("component", "gateway") != "gateway":
                    continue
                found[(sample.name, *sorted(sample.labels.items()))] = sample.value  # type: ignore[arg-type]
    return found


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path, upstream: Loopback, redis: SharedRedis, *, fast: bool
                   ) -> AsyncIterator[int]:  # fmt: skip
    """The gateway as ``orchestrion gateway`` serves it, on a free port."""
    tag = "fast" if fast else "layers"
    overrides = redis.gateway(
        fast_path=fast, max_body_bytes=MAX_BODY,
        rate_limit_prefix=f"{redis.prefix}{tag}:rl:",
    )  # fmt: skip
    settings = make_settings(
        tmp_path / tag, "sqlite+aiosqlite:///unused.db", host="127.0.0.1", port=free_port(),
        observability={"access_log": True}, **overrides,
    )  # fmt: skip
    secret = settings.secret_key.get_secret_value().encode()
    policy = UpstreamPolicy(health_interval=0, retries=2)
    upstreams: dict[str, Upstream] = {
        "loop": HttpUpstream("loop", [upstream.url], secret=secret, policy=policy),
        "dead": HttpUpstream("dead", [f"http://127.0.0.1:{free_port()}"], secret=secret,
                             policy=policy),
    }  # fmt: skip
    routes = [
        Route(prefix="/echo", service="loop", public=PUBLIC),
        Route(prefix="/status", service="loop", public=PUBLIC),
        Route(prefix="/blob", service="loop", public=PUBLIC),
        Route(prefix="/sse", service="loop", public=PUBLIC),
        Route(prefix="/private", service="loop"),
        Route(prefix="/echo/limited", service="loop", public=PUBLIC, rate_limit="2/minute"),
        Route(prefix="/dead", service="dead", public=PUBLIC),
    ]
    app = create_gateway(settings, upstreams, routes=routes)
    config = _uvicorn_config(app, settings, gateway=True)
    config.log_level = logging.WARNING
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield settings.port
    finally:
        server.should_exit = True
        await task


async def _run(
    tmp_path: Path, upstream: Loopback, redis: SharedRedis, caplog: pytest.LogCaptureFixture,
    *, fast: bool,
) -> tuple[list[Any], dict[tuple[str, ...], float], list[str]]:  # fmt: skip
    """Every exchange's answers, the metrics they added and the access log lines."""
    before = _samples()
    caplog.clear()
    async with _serving(tmp_path, upstream, redis, fast=fast) as port:
        answers = [[_normalised(a) for a in await _exchange(port, b"".join(e))] for e in EXCHANGES]
        answers.append([_normalised(a) for a in await _continued(port)])
    after = _samples()
    added = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    lines = [
        re.sub(r" [0-9.]+ms$", "", r.getMessage())
        for r in caplog.records
        if r.name == "orchestrion.access"
    ]
    return answers, added, lines


async def test_the_fast_path_answers_as_the_layers_do(
    tmp_path: Path,
    upstream: Loopback,
    shared_redis: SharedRedis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[str] = []
    proxy = Gateway.proxy

    async def counted(self: Gateway, scope: Any, *args: Any) -> None:
        served.append(scope["path"])
        await proxy(self, scope, *args)

    monkeypatch.setattr(Gateway, "proxy", counted)
    caplog.set_level(logging.INFO, logger="orchestrion.access")

    layers = await _run(tmp_path, upstream, shared_redis, caplog, fast=False)
    assert served == []
    fast = await _run(tmp_path, upstream, shared_redis, caplog, fast=True)
    assert set(served) == FAST

    answers, metrics, log = fast
    assert len(answers) == len(layers[0])
    for mine, theirs in zip(answers, layers[0], strict=True):
        assert len(mine) == len(theirs)
        for answer, expected in zip(mine, theirs, strict=True):
            assert answer == expected
    assert metrics == layers[1]
    assert log == layers[2]

    # The exchanges did what they are meant to (so that equal means something).
    statuses = [[status for status, _, _ in exchange] for exchange in answers]
    assert statuses == [
        [200, 200, 200, 200, 418, 502, 200],
        [401, 401, 200, 200, 429, 404, 200, 200],
        [413],
        [503, 200, 200, 200],
        [200, 200],
        [200],
        [100, 200],
    ]
    first = dict(answers[0][0][1])
    assert first["x-request-id"] == "fast-path-1"
    assert first["server"] == "orchestrion"
    assert first["ratelimit-limit"] == "600"
    assert b'"body_bytes":80000' in answers[0][3][2]
    assert "x-drop-me" not in answers[0][0][2].decode()
    assert b"forged" not in answers[0][0][2]
    limited = dict(answers[1][4][1])
    assert limited["content-type"] == "application/problem+json"
    assert limited["ratelimit-remaining"] == "0"
    assert "retry-after" in limited
    assert dict(answers[1][7][1])["x-request-id"] == "<id>"
    assert len(answers[3][1][2]) == 200_000
    assert len(answers[3][2][2]) == 150_000
    assert dict(answers[3][2][1])["transfer-encoding"] == "chunked"
    assert answers[3][3][2].count(b"data: event") == 3
    assert dict(answers[5][0][1])["connection"] == "close"
    assert sum(v for k, v in metrics.items() if k[0] == "orchestrion_http_requests_total") == 24
    assert len(log) == 24


async def test_cors_takes_the_layers(
    tmp_path: Path, database_url: str, upstream: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    proxy = Gateway.proxy

    async def counted(self: Gateway, scope: Any, *args: Any) -> None:
        served.append(scope["path"])
        await proxy(self, scope, *args)

    monkeypatch.setattr(Gateway, "proxy", counted)
    routes = [Route(prefix="/echo", service="loop", public=PUBLIC)]
    for cors, expected in (([], ["/echo/a"]), (["https://app.example"], [])):
        served.clear()
        settings = make_settings(
            tmp_path, database_url, gateway={"cors_origins": cors, "rate_limit": ""}
        )
        secret = settings.secret_key.get_secret_value().encode()
        upstreams: dict[str, Upstream] = {
            "loop": HttpUpstream(
                "loop", [upstream.url], secret=secret, policy=UpstreamPolicy(health_interval=0)
            )
        }
        app = create_gateway(settings, upstreams, routes=routes)
        async with in_process(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                answer = await client.get("/echo/a")
        assert answer.status_code == 200
        assert served == expected
        assert ("origin" in answer.headers.get("vary", "").lower()) == bool(cors)
