"""GraphQL resolvers reach the services here: REST calls through the gateway, as the caller.

A call is an ASGI request the gateway forwards on the caller's behalf
(:meth:`Gateway.call_as <orchestrion.gateway.app.Gateway.call_as>`): the route's
permission is checked against the principal and the service receives the signed
identity header, exactly as for the client's own REST request, in process (``up``) or
over HTTP (``orchestrion gateway``). Resolvers never see a table nor import a service.

A problem answer (4xx/5xx) becomes :class:`Problem`, which the schema turns into a
GraphQL error with ``extensions.code`` and ``extensions.status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from starlette.types import Message, Receive, Scope, Send

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import OrchestrionError

logger = logging.getLogger("orchestrion.graphql")
Params = Mapping[str, str | int | float | None]
# What a frame of an SSE stream may grow to before the stream is judged broken.
_MAX_FRAME_BYTES = 8 * 1024 * 1024

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    502: "UPSTREAM_ERROR",
    503: "SERVICE_UNAVAILABLE",
    504: "UPSTREAM_TIMEOUT",
}


class Problem(Exception):
    """A service answered with a problem (or the gateway refused the call): shown to the
    client as a GraphQL error, its status and detail kept, nothing else of the service's."""

    def __init__(
        self, status: int, detail: str, *, errors: list[Any] | None = None, code: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.code = code or CODES.get(status, "INTERNAL" if status >= 500 else "BAD_REQUEST")

    @classmethod
    def of(cls, exc: OrchestrionError) -> Problem:
        """The problem an :class:`OrchestrionError` stands for."""
        return cls(exc.status_code, exc.detail, errors=exc.errors)

    def extensions(self) -> dict[str, Any]:
        """``extensions`` of the GraphQL error."""
        out: dict[str, Any] = {"code": self.code, "status": self.status}
        if self.errors:
            out["errors"] = self.errors
        return out


class Dispatcher(Protocol):
    """What the gateway offers GraphQL: forward a request on a principal's behalf."""

    async def call_as(
        self, principal: Principal, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Forward ``scope`` to its service as ``principal`` (permissions checked)."""


@dataclass
class Response:
    """A buffered answer."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        """The body parsed; a service's non-JSON answer is a 502."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            raise Problem(502, "the service answered something other than JSON") from None


@dataclass
class Calls:
    """REST calls made for one GraphQL operation, as one principal."""

    gateway: Dispatcher
    principal: Principal
    origin: Scope
    count: int = 0
    by_service: dict[str, int] = field(default_factory=dict)

    def _scope(self, method: str, path: str, params: Params | None, body: bytes | None) -> Scope:
        query = urlencode({k: str(v) for k, v in (params or {}).items() if v is not None})
        headers = [(b"host", b"gateway.internal"), (b"accept", b"application/json")]
        if body is not None:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        request_id = (self.origin.get("state") or {}).get("request_id")
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": self.origin.get("client"),
            "server": self.origin.get("server"),
            "state": {"request_id": request_id} if request_id else {},
        }
        for key in ("orchestrion.client_ip", "orchestrion.trusted_peer"):
            if key in self.origin:
                scope[key] = self.origin[key]
        self.count += 1
        service = "/".join(path.split("/")[:4])
        self.by_service[service] = self.by_service.get(service, 0) + 1
        return scope

    async def request(
        self, method: str, path: str, *, params: Params | None = None, body: Any = None
    ) -> Response:
        """One call, answer buffered; a problem status raises :class:`Problem`."""
        raw = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        scope = self._scope(method, path, params, raw)
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        sent = False
        never = asyncio.Event()

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw or b"", "more_body": False}
            await never.wait()  # the service waits for a disconnect that never comes
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.gateway.call_as(self.principal, scope, receive, send)
        except OrchestrionError as exc:
            raise Problem.of(exc) from None
        response = Response(status, headers, b"".join(chunks))
        if status >= 400:
            raise _problem(response)
        return response

    async def get(self, path: str, params: Params | None = None) -> Any:
        """GET ``path``, the JSON answer."""
        return (await self.request("GET", path, params=params)).json()

    async def post(self, path: str, body: Any = None, params: Params | None = None) -> Any:
        """POST a JSON ``body`` to ``path``, the JSON answer."""
        return (await self.request("POST", path, params=params, body=body)).json()

    async def events(
        self, path: str, params: Params | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a Server-Sent Events answer, as they come; the stream is closed
        when the caller stops iterating (a subscription's client left)."""
        scope = self._scope("GET", path, params, None)
        scope["headers"].append((b"accept", b"text/event-stream"))
        queue: asyncio.Queue[Message | BaseException] = asyncio.Queue()
        closed = asyncio.Event()
        asked = False

        async def receive() -> Message:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await closed.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            await queue.put(message)

        async def run() -> None:
            try:
                await self.gateway.call_as(self.principal, scope, receive, send)
            except BaseException as exc:  # handed to the reader, which re-raises it
                await queue.put(exc)
                raise
            finally:
                await queue.put({"type": "http.response.body", "body": b"", "more_body": False})

        task = asyncio.create_task(run())
        try:
            async for event in _read_stream(queue):
                yield event
        finally:
            closed.set()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _read_stream(
    queue: asyncio.Queue[Message | BaseException],
) -> AsyncIterator[dict[str, Any]]:
    start = await queue.get()
    if isinstance(start, OrchestrionError):
        raise Problem.of(start)
    if isinstance(start, BaseException):
        raise Problem(502, "the service failed") from start
    status = int(start.get("status", 500))
    if status >= 400:
        chunks: list[bytes] = []
        while isinstance(item := await queue.get(), dict):
            chunks.append(item.get("body", b""))
            if not item.get("more_body"):
                break
        raise _problem(Response(status, list(start.get("headers", [])), b"".join(chunks)))
    buffer = b""
    while True:
        item = await queue.get()
        if isinstance(item, BaseException):
            raise Problem(502, "the event stream broke off") from item
        buffer += item.get("body", b"")
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            event = _parse_frame(frame)
            if event is not None:
                yield event
        if len(buffer) > _MAX_FRAME_BYTES:
            raise Problem(502, "the event stream sent an oversized frame")
        if not item.get("more_body", False):
            return


def _parse_frame(frame: bytes) -> dict[str, Any] | None:
    """An SSE frame's ``data`` as JSON; None for comments, tokens and empty frames."""
    kind = "message"
    data: list[str] = []
    for line in frame.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
    if not data or kind == "token":
        return None
    try:
        parsed = json.loads("\n".join(data))
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _problem(response: Response) -> Problem:
    detail = "the service failed"
    errors: list[Any] = []
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("title") or detail)
        if isinstance(body.get("errors"), list):
            errors = body["errors"]
    if response.status >= 500:
        # A service's own failure says nothing a client may read beyond its status.
        logger.warning("service answered %d: %s", response.status, detail)
        detail = {502: "a service failed", 503: "a service is unavailable"}.get(
            response.status,
            "a service did not answer in time" if response.status == 504 else "a service failed",
        )
        errors = []
    return Problem(response.status, detail, errors=errors)
