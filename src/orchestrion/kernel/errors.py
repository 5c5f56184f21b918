"""Errors every service raises, rendered once as RFC 9457 problem+json.

Exception tree::

    OrchestrionError (500)
    ├── BadRequest (400)
    │   └── ValidationFailed (422)
    ├── Unauthenticated (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── MethodNotAllowed (405)
    ├── Conflict (409)
    ├── PreconditionFailed (412)
    ├── PayloadTooLarge (413)
    ├── TooManyRequests (429)
    └── UpstreamError (502)
        ├── ServiceUnavailable (503)
        └── UpstreamTimeout (504)

Services subclass these per domain (``WorkflowNotFound(NotFound)``); the handlers in
:func:`install_error_handlers` turn any of them, framework errors and unexpected
exceptions into one problem document, never a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("orchestrion.errors")


class OrchestrionError(Exception):
    """Base of every expected failure; ``status_code`` picks the HTTP status."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str | None] = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.default_title())
        self.detail = detail or self.default_title()
        self.errors = [dict(e) for e in errors or []]
        self.headers = dict(headers or {})

    @classmethod
    def default_title(cls) -> str:
        """The status's standard phrase unless the class names its own title."""
        return cls.title or HTTPStatus(cls.status_code).phrase

    @property
    def type_uri(self) -> str:
        """A stable identifier for the problem type."""
        return f"https://orchestrion.dev/problems/{self.default_title().lower().replace(' ', '-')}"


class BadRequest(OrchestrionError):
    """The request is malformed."""

    status_code = 400


class ValidationFailed(BadRequest):
    """The request is well-formed but its content is invalid."""

    status_code = 422


class Unauthenticated(OrchestrionError):
    """No valid credentials."""

    status_code = 401

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(OrchestrionError):
    """Credentials are valid but do not allow this."""

    status_code = 403


class NotFound(OrchestrionError):
    """No such resource (or not visible to the caller's tenant)."""

    status_code = 404


class MethodNotAllowed(OrchestrionError):
    """The path exists but not with this method."""

    status_code = 405


class Conflict(OrchestrionError):
    """The request conflicts with the resource's state."""

    status_code = 409


class PreconditionFailed(OrchestrionError):
    """An ``If-Match`` precondition did not hold."""

    status_code = 412


class PayloadTooLarge(OrchestrionError):
    """The body is larger than allowed."""

    status_code = 413


class TooManyRequests(OrchestrionError):
    """Rate limited; ``Retry-After`` says when to come back."""

    status_code = 429


class UpstreamError(OrchestrionError):
    """A service behind the gateway failed."""

    status_code = 502


class ServiceUnavailable(UpstreamError):
    """A service is down or refusing work."""

    status_code = 503


class UpstreamTimeout(UpstreamError):
    """A service did not answer in time."""

    status_code = 504


def problem_body(
    *,
    status: int,
    detail: str,
    instance: str,
    request_id: str | None,
    title: str | None = None,
    type_uri: str = "about:blank",
    errors: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The RFC 9457 document API.md specifies, with ``request_id`` and ``errors``."""
    return {
        "type": type_uri,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
        "errors": [dict(e) for e in errors],
    }


def problem_response(
    *,
    status: int,
    detail: str,
    instance: str,
    request_id: str | None,
    title: str | None = None,
    type_uri: str = "about:blank",
    errors: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    """A problem+json response; ``extensions`` adds members (RFC 9457 section 3.2) without
    replacing the standard ones."""
    body = problem_body(
        status=status,
        detail=detail,
        instance=instance,
        request_id=request_id,
        title=title,
        type_uri=type_uri,
        errors=errors,
    )
    for name, value in (extensions or {}).items():
        body.setdefault(name, value)
    return Response(
        json.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def request_id_of(request: Request) -> str | None:
    """The request's id (set by the request-id middleware, or sent by the client)."""
    value = getattr(request.state, "request_id", None) or request.headers.get("x-request-id")
    return str(value) if value else None


def _loc(loc: Sequence[Any]) -> list[Any]:
    return [part if isinstance(part, int) else str(part) for part in loc]


def validation_errors(raw: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts trimmed to ``{"loc", "msg"}``."""
    return [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in raw]


def error_response(request: Request, exc: OrchestrionError) -> Response:
    """``exc`` as the problem response its handler would give.

    For endpoints that must answer with an error yet commit what they recorded
    (a revoked token family, an audit entry): raising would roll the work back.
    """
    if exc.status_code >= 500:
        logger.error("request failed: %s", exc.detail)
    return problem_response(
        status=exc.status_code,
        detail=exc.detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        title=exc.default_title(),
        type_uri=exc.type_uri,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _handle_orchestrion(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OrchestrionError)
    return error_response(request, exc)


async def _handle_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    body_missing = any(e["loc"] == ["body"] for e in errors)
    return problem_response(
        status=422,
        detail="request body is required" if body_missing else "request validation failed",
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=errors,
    )


async def _handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    return problem_response(
        status=exc.status_code,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        headers=exc.headers,
    )


class Busy(TimeoutError):
    """A shared resource stayed busy past its wait (SQLite's single writer under load).

    A ``TimeoutError`` for the code that waits; a client is answered 503 with
    ``Retry-After``: the same request will likely pass a moment later.
    """


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Busy):
        logger.warning("busy on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            status=503,
            detail=f"{exc}; try again shortly",
            instance=request.url.path,
            request_id=request_id_of(request),
            headers={"Retry-After": "1"},
        )
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        status=500,
        detail="an unexpected error occurred; quote the request id when reporting it",
        instance=request.url.path,
        request_id=request_id_of(request),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every failure of ``app`` as problem+json."""
    app.add_exception_handler(OrchestrionError, _handle_orchestrion)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_unexpected)
