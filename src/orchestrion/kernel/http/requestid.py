"""``X-Request-ID`` on every request and response, bound into the logs."""

from __future__ import annotations

import re

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion.kernel.ids import new_id

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
# Client ids are echoed into logs and headers: keep them short and printable.
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(scope: Scope) -> str:
    """The client's request id if it is sane, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _VALID.match(text):
                return text
    return new_id()


def echo_request_id(start: Message, encoded: bytes) -> None:
    """Put ``X-Request-ID: <encoded>`` on an ``http.response.start`` message, once."""
    # A service behind the gateway already echoes the id it was given.
    headers = start.get("headers", [])
    if not any(k.lower() == _HEADER_BYTES and v == encoded for k, v in headers):
        kept = [(k, v) for k, v in headers if k.lower() != _HEADER_BYTES]
        start["headers"] = [*kept, (_HEADER_BYTES, encoded)]


class RequestIdMiddleware:
    """Pure ASGI middleware: cheap, and it does not buffer streamed bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Assign the id, expose it on ``request.state`` and the logs, echo it back."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        encoded = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                echo_request_id(message, encoded)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
