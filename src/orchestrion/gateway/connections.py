"""Slow and greedy clients at the gateway's sockets (slowloris and its kin).

uvicorn's HTTP protocol waits for a request's headers and body as long as the client
likes, takes headers of any size, and accepts any number of connections from one
address, so a few clients dribbling bytes can hold every connection the process has.
:func:`protocol_class` returns uvicorn's httptools protocol with four limits:

- the headers of a request must arrive within ``header_timeout_seconds`` of its first
  byte (or of the connection opening): else ``408`` and the connection closes;
- they may not exceed ``max_header_bytes``: else ``431`` and it closes;
- a request body must arrive within ``body_timeout_seconds`` of the headers (time the
  gateway itself stops reading, while the app is slower than the client, is not
  counted): else ``408`` and it closes;
- one client address holds at most ``max_connections_per_ip`` connections at once
  (the trusted proxies excepted: every client behind them shares their address): a
  connection past it is answered ``429`` and closed.

The answers are problem+json documents naming the limit and its setting, written on the
socket directly (the request never reached the app).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from http import HTTPStatus
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orchestrion.gateway.forwarded import in_networks, networks
from orchestrion.gateway.lane import Lane, LaneCycle, lane_of
from orchestrion.kernel.errors import PROBLEM_JSON
from orchestrion.settings import GatewaySettings


class _Refused(httptools.HttpParserError):
    """Stops the parser once a request has been refused (uvicorn catches parser errors)."""


def _problem(status: int, detail: str) -> bytes:
    phrase = HTTPStatus(status).phrase
    return json.dumps(
        {
            "type": "about:blank",
            "title": phrase,
            "status": status,
            "detail": detail,
            "instance": None,
            "request_id": None,
            "errors": [],
        }
    ).encode()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts, a header cap and an IP cap.

    Subclasses made by :func:`protocol_class` set the class attributes.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_per_ip: int = 256
    exempt: tuple[Any, ...] = ()
    open_per_ip: ClassVar[Counter[str]] = Counter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._counted: str | None = None
        self._refused = False
        # The gateway's fast lane (gateway/lane.py), when the app served has one.
        self._lane: tuple[Lane, bool] | None = (
            lane_of(self.app) if self.limit_concurrency is None else None
        )

    # --- the connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse an address past its connection cap; else wait for a request's headers."""
        super().connection_made(transport)
        ip = self.client[0] if self.client else ""
        if self.max_per_ip and ip and not in_networks(ip, self.exempt):
            if self.open_per_ip[ip] >= self.max_per_ip:
                self._refuse(
                    429,
                    f"more than {self.max_per_ip} connections from one address; "
                    "ORCHESTRION_GATEWAY__MAX_CONNECTIONS_PER_IP sets the limit",
                )
                return
            self.open_per_ip[ip] += 1
            self._counted = ip
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the address's connection slot and any timer."""
        self._disarm()
        self._release()
        super().connection_lost(exc)

    def _release(self) -> None:
        if self._counted is not None:
            self.open_per_ip[self._counted] -= 1
            if self.open_per_ip[self._counted] <= 0:
                del self.open_per_ip[self._counted]
            self._counted = None

    def handle_websocket_upgrade(self) -> None:
        """A WebSocket leaves this protocol (and its limits): release its slot now."""
        self._disarm()
        self._release()
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        """Nothing more is read from a refused connection."""
        if not self._refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 for unparsable requests, unless this one was refused already."""
        if not self._refused:
            super().send_400_response(msg)

    # --- a request ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A request starts: its headers have ``header_timeout`` seconds to arrive."""
        super().on_message_begin()
        self._header_bytes = 0
        self._arm(self.header_timeout, self._headers_late)

    def on_url(self, url: bytes) -> None:
        """Count the request line against the header cap."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header against the cap."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Headers in: the body (if any) has ``body_timeout`` seconds to arrive; a plain
        proxied request goes to the fast lane instead of an ASGI cycle."""
        self._disarm()
        if self._lane is not None:
            cycle = self._lane[0].cycle(self, self._lane[1])
            if cycle is not None:
                self._take(cycle)
                return
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _JoinedWrites(self.transport, self.loop)  # type: ignore[assignment]
        if self.cycle is not None and self.cycle.more_body and self._expects_body():
            self._arm(self.body_timeout, self._body_late)

    def _take(self, cycle: LaneCycle) -> None:
        """Start ``cycle`` now, or after the answers before it (pipelining), as uvicorn
        starts its own cycles."""
        existing = self.cycle
        self.cycle = cycle  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)  # type: ignore[arg-type]
        else:
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]

    def on_message_complete(self) -> None:
        """The whole request is in: no timer runs while the app answers."""
        self._disarm()
        super().on_message_complete()

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"0", b"")
            if name == b"transfer-encoding":
                return True
        return False

    # --- limits -------------------------------------------------------------------------

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refuse(
                431,
                f"request headers are larger than {self.max_header_bytes} bytes; "
                "ORCHESTRION_GATEWAY__MAX_HEADER_BYTES sets the limit",
            )
            raise _Refused("headers too large")

    def _headers_late(self) -> None:
        self._timer = None
        self._refuse(
            408,
            f"request headers did not arrive within {self.header_timeout:g}s; "
            "ORCHESTRION_GATEWAY__HEADER_TIMEOUT_SECONDS sets the limit",
        )

    def _body_late(self) -> None:
        self._timer = None
        if self.flow is not None and self.flow.read_paused:
            # The gateway stopped reading (the app is slower than the client): not late.
            self._arm(self.body_timeout, self._body_late)
            return
        # The app may have answered without reading the body: then only close.
        self._refuse(
            408,
            f"the request body did not arrive within {self.body_timeout:g}s; "
            "ORCHESTRION_GATEWAY__BODY_TIMEOUT_SECONDS sets the limit",
            answer=self.cycle is None or not self.cycle.response_started,
        )

    def _refuse(self, status: int, detail: str, *, answer: bool = True) -> None:
        """Answer ``status`` (unless ``answer`` is false or a response has begun) and close."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm()
        cycle = self.cycle
        busy = cycle is not None and not cycle.response_complete
        if cycle is not None and busy:
            # The app sees a disconnect; whatever it sends now is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if answer and not (busy and cycle is not None and cycle.response_started):
            body = _problem(status, detail)
            head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
            for name, value in self.server_state.default_headers:
                head.append(name + b": " + value + b"\r\n")
            head.append(
                f"content-type: {PROBLEM_JSON}\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n\r\n".encode()
            )
            self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        if seconds > 0:
            self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def protocol_class(settings: GatewaySettings) -> type[GuardedProtocol]:
    """uvicorn's ``http=`` protocol with ``settings``' connection limits."""
    return type(
        "GatewayProtocol",
        (GuardedProtocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "max_header_bytes": settings.max_header_bytes,
            "max_per_ip": settings.max_connections_per_ip,
            "exempt": networks(settings.trusted_proxies),
            "open_per_ip": Counter(),
        },
    )


# Writes up to this size are joined; a bigger one goes out as it is.
_JOINED_BYTES = 64 * 1024


class _JoinedWrites:
    """The socket as one request's answer sees it: each write waits for the next one, or
    for the end of this event-loop turn, and goes out with it.

    uvicorn writes an answer's head and its body separately; the proxy sends both in the
    same turn, so a small answer leaves in one ``write`` (one syscall, one TCP segment)
    instead of two. Nothing waits past the turn it was written in, and a close sends
    what waits first: bytes and their order on the wire are unchanged.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        """Send ``data`` with what waits, or keep it until the next write or turn."""
        held = self._held
        if held is not None:
            self._held = None
            if len(data) > _JOINED_BYTES:
                self._transport.write(held)  # a big piece is not copied to join them
                self._transport.write(data)
            else:
                self._transport.write(held + data)
            return
        if len(data) > _JOINED_BYTES:
            self._transport.write(data)
            return
        self._held = bytes(data)
        self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send what waits now."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        """Whether the socket is closing (what waits then goes nowhere)."""
        return self._transport.is_closing()

    def close(self) -> None:
        """Send what waits, then close."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
