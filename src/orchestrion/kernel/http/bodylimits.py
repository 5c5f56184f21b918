"""Refuse JSON request bodies nested deeper than a limit, before anything parses them.

``json.loads`` recurses once per level: a body of a few hundred kilobytes of ``[`` would
exhaust the stack and answer 500. :class:`JsonDepthMiddleware` counts the depth as the
body arrives, with a small state machine that skips strings, and answers 422
problem+json naming the limit; the body is then replayed to the app unchanged.
"""

from __future__ import annotations

import re
from typing import Final, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrion.kernel.errors import problem_response
from orchestrion.kernel.http.requestid import request_id_from

DEFAULT_MAX_DEPTH: Final = 64
_TOKENS: Final = re.compile(rb'[\[\]{}"\\]')
_OPEN: Final = frozenset(b"[{")
_CLOSE: Final = frozenset(b"]}")


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


class DepthScanner:
    """Incremental nesting depth of a JSON text fed in chunks (strings are skipped)."""

    __slots__ = ("_escape", "_in_string", "depth", "max_depth")

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.depth = 0
        self._in_string = False
        self._escape = False

    def feed(self, data: bytes) -> bool:
        """Scan one chunk; False once the depth has gone past max_depth."""
        skip = 0
        if self._escape and data:
            self._escape, skip = False, 1
        for match in _TOKENS.finditer(data, skip):
            at = match.start()
            if at < skip:
                continue
            char = data[at]
            if self._in_string:
                if char == 0x5C:  # backslash: the next byte is escaped
                    skip = at + 2
                    self._escape = skip > len(data)
                elif char == 0x22:
                    self._in_string = False
            elif char == 0x22:
                self._in_string = True
            elif char in _OPEN:
                self.depth += 1
                if self.depth > self.max_depth:
                    return False
            elif char in _CLOSE:
                self.depth -= 1
        return True


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
        """Scan a JSON body as it arrives, then hand it on or refuse it."""
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        scanner = DepthScanner(self.max_depth)
        received: list[Message] = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            if not scanner.feed(message.get("body", b"")):
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
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if received:
                return received.pop(0)
            return await receive()

        await self.app(scope, replay, send)
