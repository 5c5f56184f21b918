"""Composite endpoints: one request, several upstream calls, one answer.

Each part is a GET through the gateway itself, with the caller's own credentials, so
authentication, permissions, rate limits and caching apply to every part exactly as
if the client had called it. Parts run concurrently; the answer says which failed:

```json
{"data": {"workflows": {...}, "executions": null},
 "errors": [{"part": "executions", "status": 403, "detail": "missing permission ..."}],
 "partial": true}
```
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

DEFAULT_COMPOSITES: dict[str, dict[str, str]] = {
    "/api/v1/dashboard": {
        "me": "/api/v1/auth/me",
        "workflows": "/api/v1/workflows?limit=5&sort=updated_at:desc",
        "executions": "/api/v1/executions?limit=5&sort=created_at:desc",
    }
}
_FORWARDED = ("authorization", "x-api-key", "x-request-id", "accept-language")
PART_TIMEOUT_SECONDS = 10.0


class Composer:
    """Serves composite endpoints by calling ``app`` (the gateway core) once per part."""

    def __init__(self, app: ASGIApp) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://gateway.internal",
            timeout=PART_TIMEOUT_SECONDS,
        )

    async def aclose(self) -> None:
        """Release the client."""
        await self.client.aclose()

    async def compose(self, request: Request, parts: Mapping[str, str]) -> Response:
        """Call every part with the caller's credentials; merge what came back."""
        headers = {k: v for k in _FORWARDED if (v := request.headers.get(k)) is not None}
        names = list(parts)
        results = await asyncio.gather(*(self._part(parts[n], headers) for n in names))
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, (status, body) in zip(names, results, strict=True):
            if status < 400:
                data[name] = body
            else:
                data[name] = None
                detail = body.get("detail") if isinstance(body, dict) else None
                errors.append({"part": name, "status": status, "detail": detail or "failed"})
        status_code = 502 if errors and len(errors) == len(names) else 200
        return JSONResponse(
            {"data": data, "errors": errors, "partial": bool(errors)}, status_code=status_code
        )

    async def _part(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        try:
            response = await self.client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            return 504, {"detail": f"no answer: {type(exc).__name__}"}
        try:
            return response.status_code, response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return response.status_code, {"detail": response.text[:200]}
