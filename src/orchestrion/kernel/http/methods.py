"""405 with the full ``Allow`` for a path whose routes do not take the method.

Starlette answers a method mismatch with the ``Allow`` of the first route whose path
matches, so ``PUT /users`` on a path with a GET route and a POST route says
``Allow: POST``; and a method no route declares (``TRACE``) reaches a catch-all route
when there is one. This middleware looks at every route of the path first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrion.kernel.errors import MethodNotAllowed, error_response


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        # FastAPI keeps an included router as one entry whose routes carry its prefix.
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from _flat(contexts())
        else:
            yield route


def allowed_methods(routes: Iterable[BaseRoute], path: str) -> frozenset[str]:
    """The methods of the HTTP routes of ``path`` (empty: none).

    The routes written for exactly ``path`` when there are some, else every route whose
    pattern matches it.
    """
    literal: set[str] = set()
    templated: set[str] = set()
    for route in _flat(routes):
        if isinstance(route, WebSocketRoute) or isinstance(
            getattr(route, "original_route", None), WebSocketRoute
        ):
            continue
        found = getattr(route, "methods", None)
        pattern = getattr(route, "path_regex", None)
        if found and pattern is not None and pattern.match(path):
            # ``/workflows/step-types`` is its own resource, not ``/workflows/{id}``.
            (literal if getattr(route, "path_format", None) == path else templated).update(found)
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

    def __init__(self, app: ASGIApp, *, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        # The router's live list: routes are added after the middleware is.
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a method the path's routes do not take; pass everything else on."""
        if scope["type"] == "http":
            methods = allowed_methods(self.routes, scope["path"])
            if methods and scope["method"] not in methods:
                response = error_response(Request(scope), method_not_allowed(methods))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
