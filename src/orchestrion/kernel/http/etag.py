"""Entity tags: ``ETag`` on single resources, ``If-None-Match`` and ``If-Match``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrion.kernel.errors import PreconditionFailed


def compute_etag(payload: Any) -> str:
    """A strong ETag over the canonical JSON of ``payload``."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def _matches(header: str, etag: str) -> bool:
    candidates = [part.strip() for part in header.split(",")]
    bare = etag.removeprefix("W/")
    return "*" in candidates or any(c.removeprefix("W/") == bare for c in candidates)


def resource_response(
    request: Request, payload: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``payload`` as JSON with its ETag, or 304 when the client already holds it."""
    etag = compute_etag(payload)
    all_headers = {"ETag": etag, **(headers or {})}
    if_none_match = request.headers.get("if-none-match")
    if status_code == 200 and if_none_match and _matches(if_none_match, etag):
        return Response(status_code=304, headers=all_headers)
    return JSONResponse(payload, status_code=status_code, headers=all_headers)


def check_if_match(request: Request, current: Any) -> None:
    """Raise 412 when ``If-Match`` is present and does not match ``current``'s ETag."""
    if_match = request.headers.get("if-match")
    if if_match and not _matches(if_match, compute_etag(current)):
        raise PreconditionFailed("the resource changed since it was read (If-Match mismatch)")
