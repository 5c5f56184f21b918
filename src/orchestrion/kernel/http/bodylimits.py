"""Refuse JSON request bodies nested deeper than a limit, before anything parses them.

``json.loads`` recurses once per level: a body of a few hundred kilobytes of ``[`` would
exhaust the stack and answer 500. :class:`JsonDepthMiddleware` reads a JSON body (the app
would read all of it anyway), measures its nesting with :func:`nesting_exceeds` (strings
skipped) and answers 422 problem+json naming the limit; otherwise the body is replayed to
the app unchanged.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Final, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion.kernel.errors import problem_response
from orchestrion.kernel.http.requestid import request_id_from

DEFAULT_MAX_DEPTH: Final = 64
# A JSON string, escapes included (the unrolled form: no backtracking, C speed).
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS: Final = bytes(range(256)).translate(None, delete=b"[]{}")
_DELTA: Final = [0] * 256
for _byte in b"[{":
    _DELTA[_byte] = 1
for _byte in b"]}":
    _DELTA[_byte] = -1


class BodyLimits(Protocol):
    """What the middleware reads from the settings' ``limits`` section."""

    @property
    def body_max_depth(self) -> int:
        """Deepest nesting of a JSON body."""
        ...

    @property
    def list_max_offset(self) -> int:
        """Furthest a paged list may skip."""
        ...


def nesting_exceeds(data: bytes, max_depth: int) -> bool:
    """Whether a JSON text nests arrays and objects deeper than max_depth.

    Strings are cut out first (brackets inside them do not count), then the running depth
    of what remains is taken; every step runs in C, at about the speed of ``json.loads``.
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:  # cannot be deeper: the usual case
        return False
    brackets = _STRING.sub(b"", data).translate(None, delete=_NOT_BRACKETS)
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0) > max_depth


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class JsonDepthMiddleware:
    """Pure ASGI middleware answering 422 to JSON bodies nested deeper than ``max_depth``."""

    def __init__(self, app: ASGIApp, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a JSON body, then hand it on unchanged or refuse it."""
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in received if m["type"] == "http.request")
        if nesting_exceeds(body, self.max_depth):
            response = problem_response(
                status=422,
                detail=f"the JSON body is nested deeper than {self.max_depth} levels "
                "(limits.body_max_depth, ORCHESTRION_LIMITS__BODY_MAX_DEPTH)",
                instance=scope.get("path", ""),
                request_id=scope.get("state", {}).get("request_id") or request_id_from(scope),
                title="Unprocessable Content",
                type_uri="https://orchestrion.dev/problems/body-too-deep",
            )
            await response(scope, receive, send)
            return

        async def replay() -> Message:
            if received:
                return received.pop(0)
            return await receive()

        await self.app(scope, replay, send)
