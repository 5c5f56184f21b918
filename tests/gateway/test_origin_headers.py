"""One ``Date`` and one ``Server`` on every answer of a real ``orchestrion gateway`` process.

The gateway runs as a user starts it, in front of the session's loopback server
(uvicorn: its own ``Date`` and ``Server``, plus ``Server: loopback`` from the echo
route), a bare HTTP server here that sends the headers a test asks for (a fixed ``Date``,
none, two; versioned ``Server`` values), the same server over TLS, and a port nobody
listens on. Answers are parsed from the raw bytes with h11, which keeps every header
line (httpx would fold repeated ones).
"""

from __future__ import annotations

import datetime as dt
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import h11
import pytest

from tests.fixtures.processes import free_port, spawn, stop, wait_ready
from tests.fixtures.tls import self_signed
from tests.fixtures.upstream import Upstream as Loopback

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

# RFC 9110's own example date: no clock makes it, so seeing it proves whose Date it is.
UPSTREAM_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
LATER_DATE = "Mon, 07 Nov 1994 08:49:37 GMT"
CONFIG = """
routes:
  - {prefix: /echo, service: loop, public: true}
  - {prefix: /blob, service: loop, public: true}
  - {prefix: /sse, service: loop, public: true}
  - {prefix: /raw, service: raw, public: true}
  - {prefix: /tls, service: tls, public: true}
  - {prefix: /dead, service: dead, public: true}
"""


@dataclass
class Answer:
    """An answer as it came over the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def only(self, name: str) -> str:
        """The value of ``name``, failing unless exactly one line carries it."""
        values = [v for k, v in self.headers if k == name]
        assert len(values) == 1, f"{len(values)} {name} lines in {self.headers}"
        return values[0]


def exchange(port: int, method: str, target: str) -> Answer:
    """One request on a new connection; the answer read whole from the socket."""
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method=method, target=target, headers=[("host", "gateway"), ("connection", "close")]
    )
    status, headers, body = 0, [], bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return Answer(status, headers, bytes(body))


def _bare_answer(method: str, what: str) -> bytes:
    """What the bare server sends for ``.../<what>`` (anything else: no Date, no Server)."""
    body = f"bare {what}".encode()
    lines = {
        "dated": [f"Date: {UPSTREAM_DATE}", "Server: nginx/1.25.3"],
        "undated": ["Server: nginx/1.25.3"],
        "two-dates": [
            f"Date: {UPSTREAM_DATE}", "Server: nginx/1.25.3",
            f"Date: {LATER_DATE}", "Server: Apache/2.4.1 (Unix)",
        ],
        "streamed": ["Server: nginx/1.25.3"],
    }.get(what, [])  # fmt: skip
    if what == "streamed":  # chunked, no Date: the gateway must add one
        head = ["HTTP/1.1 200 OK", *lines, "Transfer-Encoding: chunked"]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body, body)) + b"0\r\n\r\n"
    else:
        head = ["HTTP/1.1 200 OK", *lines, f"Content-Length: {len(body)}"]
        payload = body
    head += ["Content-Type: text/plain", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else payload)


class _Bare(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                return
            head += chunk
        method, target = head.split(b" ", 2)[:2]
        what = target.decode().split("?")[0].rsplit("/", 1)[-1]
        sock.sendall(_bare_answer(method.decode(), what))


class _BareServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        super().__init__(("127.0.0.1", 0), _Bare)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        if self.tls is not None:
            sock.settimeout(10)
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a health check hanging up early is no test failure


@dataclass
class Bare:
    """The bare server, plain and over TLS, and the certificate to trust."""

    plain: str
    tls: str
    certificate: Path


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bare]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    plain, tls = _BareServer(None), _BareServer(context)
    for server in (plain, tls):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Bare(
            f"http://127.0.0.1:{plain.server_address[1]}",
            f"https://127.0.0.1:{tls.server_address[1]}",
            cert,
        )
    finally:
        for server in (plain, tls):
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: Loopback, bare: Bare
) -> Iterator[int]:
    """``orchestrion gateway`` in front of them all; its port."""
    home = tmp_path_factory.mktemp("gateway")
    config = home / "gateway.yaml"
    config.write_text(CONFIG)
    port = free_port()
    process: subprocess.Popen[str] = spawn(
        home, "gateway", "--host", "127.0.0.1", "--port", str(port),
        f"--upstream=loop={upstream.url}", f"--upstream=raw={bare.plain}",
        f"--upstream=tls={bare.tls}", f"--upstream=dead=http://127.0.0.1:{free_port()}",
        f"--config={config}",
        SSL_CERT_FILE=str(bare.certificate), ORCHESTRION_OBSERVABILITY__LOG_LEVEL="WARNING",
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        yield port
    finally:
        stop(process)


def _recent(date: str) -> bool:
    """Whether an HTTP-date is this moment's (give or take a slow machine)."""
    moment = parsedate_to_datetime(date)
    return abs((dt.datetime.now(dt.UTC) - moment).total_seconds()) < 30


@pytest.mark.parametrize(
    ("method", "target"),
    [
        pytest.param("GET", "/echo/a", id="lean-client-buffered"),
        pytest.param("GET", "/blob?size=200000", id="lean-client-streamed"),
        pytest.param("GET", "/blob?size=200000&chunked=1", id="lean-client-chunked"),
        pytest.param("GET", "/sse/origin-headers?n=2&gap=0.05", id="lean-client-sse"),
        pytest.param("HEAD", "/echo/a", id="aiohttp-head"),
    ],
)
def test_a_proxied_answer_has_one_date_and_one_server(
    gateway: int, method: str, target: str
) -> None:
    # The loopback server sent one Date and two Server lines (uvicorn's, the route's).
    answer = exchange(gateway, method, target)
    assert answer.status == 200
    assert answer.only("server") == "orchestrion"
    assert _recent(answer.only("date"))
    if target.startswith("/blob"):
        assert len(answer.body) == 200_000
    if target.startswith("/sse"):
        assert answer.body.count(b"data: event") == 2


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/raw/dated"),
        ("HEAD", "/raw/dated"),
        ("GET", "/raw/two-dates"),
        ("GET", "/tls/dated"),
        ("HEAD", "/tls/two-dates"),
    ],
)
def test_the_service_s_date_is_kept_and_its_server_replaced(
    gateway: int, method: str, target: str
) -> None:
    answer = exchange(gateway, method, target)
    assert answer.status == 200
    assert answer.only("date") == UPSTREAM_DATE  # the first, when a service sent two
    assert answer.only("server") == "orchestrion"  # no nginx/1.25.3, no Apache/2.4.1
    if method == "GET":
        assert answer.body == f"bare {target.rsplit('/', 1)[-1]}".encode()


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/raw/undated"),
        ("HEAD", "/raw/undated"),
        ("GET", "/raw/streamed"),
        ("GET", "/tls/undated"),
    ],
)
def test_an_answer_without_date_gets_the_gateway_s(gateway: int, method: str, target: str) -> None:
    answer = exchange(gateway, method, target)
    assert answer.status == 200
    assert _recent(answer.only("date"))
    assert answer.only("server") == "orchestrion"
    if target.endswith("streamed"):
        assert answer.body == b"bare streamedbare streamed"


@pytest.mark.parametrize(
    ("target", "status"),
    [("/nowhere", 404), ("/dead/x", 503), ("/health/live", 200), ("/metrics", 200)],
)
def test_the_gateway_s_own_answers_have_one_date_and_one_server(
    gateway: int, target: str, status: int
) -> None:
    answer = exchange(gateway, "GET", target)
    assert answer.status == status
    assert _recent(answer.only("date"))
    assert answer.only("server") == "orchestrion"
