"""405 with the full ``Allow`` for a path whose routes do not take the method.

Starlette answers a method mismatch with the ``Allow`` of the first route whose path
matches, so ``PUT /users`` on a path with a GET route and a POST route says
``Allow: POST``; and a method no route declares (``TRACE``) reaches a catch-all route
when there is one. This middleware looks at every route of the path first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, WebSocketRoute, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrion.kernel.errors import MethodNotAllowed, error_response

#: One HTTP route of an app: its methods, the pattern of its full path, and that path.
_Entry = tuple[frozenset[str], re.Pattern[str], str]


def _entries(routes: Iterable[Any], prefix: str = "") -> Iterator[_Entry]:
    for route in routes:
        # FastAPI keeps an included router as one entry naming the router and its prefix.
        # Walked here rather than through FastAPI's per-route contexts, which build every
        # route's dependencies and response models (tens of ms per app, at its first
        # request) where a pattern is all this needs.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _entries(included.routes, prefix + route.include_context.prefix)
            continue
        methods = getattr(route, "methods", None)
        path = getattr(route, "path", None)
        if not methods or path is None or isinstance(route, WebSocketRoute):
            continue
        if prefix:
            pattern, path, _ = compile_path(prefix + path)
        else:
            pattern, path = route.path_regex, route.path_format
        yield frozenset(methods), pattern, path


def route_table(routes: Iterable[BaseRoute]) -> list[_Entry]:
    """Every HTTP route of ``routes``, included routers' routes under their prefix."""
    return list(_entries(routes))


def allowed_methods(table: Iterable[_Entry], path: str) -> frozenset[str]:
    """The methods of the HTTP routes of ``path`` in ``table`` (empty: none).

    The routes written for exactly ``path`` when there are some, else every route whose
    pattern matches it.
    """
    literal: set[str] = set()
    templated: set[str] = set()
    for methods, pattern, path_format in table:
        if pattern.match(path):
            # ``/workflows/step-types`` is its own resource, not ``/workflows/{id}``.
            (literal if path_format == path else templated).update(methods)
    return frozenset(literal or templated)


def allow_header(methods: Iterable[str]) -> str:
    """``methods`` as an ``Allow`` value, in a stable order."""
    return ", ".join(sorted(methods))


def method_not_allowed(methods: Iterable[str]) -> MethodNotAllowed:
    """The 405 for a path that takes ``methods``, naming them and setting ``Allow``."""
    allow = allow_header(methods)
    return MethodNotAllowed(f"this path takes {allow}", headers={"Allow": allow})


class MethodGuardMiddleware:
    """Answers 405 with every method of the path before a route is chosen."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # The router's live list: routes are added after the middleware is, so the table
        # is made at the first request (and again if routes were added since).
        self.routes = routes
        self._table: list[_Entry] = []
        self._made_from = -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a method the path's routes do not take; pass everything else on."""
        if scope["type"] == "http":
            methods = allowed_methods(self._current_table(), scope["path"])
            if methods and scope["method"] not in methods:
                response = error_response(Request(scope), method_not_allowed(methods))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _current_table(self) -> list[_Entry]:
        count = len(self.routes)
        if count != self._made_from:
            self._table = route_table(self.routes)
            self._made_from = count
        return self._table
