"""``http``: call an HTTP endpoint; a status of 400 or more fails the step."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from orchestrion.engine.netguard import BlockedDestination
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import HTTP
from orchestrion.engine.steps.schema import STRING, TIMEOUT, closed


class Http(StepType):
    """Call an HTTP endpoint; a status of 400 or more fails the step."""

    name = "http"
    description = "Send an HTTP request; output {status, headers, body}."
    with_schema: ClassVar[dict[str, Any]] = {
        **closed(
            {
                "method": expr_or(
                    {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "default": "GET"}
                ),
                "url": {"type": "string", "minLength": 1},
                "headers": expr_or({"type": "object", "additionalProperties": STRING}),
                "json": {},
                "body": STRING,
                "timeout": TIMEOUT,
            },
            "url",
        ),
        "not": {"required": ["json", "body"]},
    }
    requires = (HTTP,)

    async def run(self, call: StepCall) -> Outcome:
        """Send the request; 5xx, 429 and network errors are retryable, 4xx are not."""
        http = call.need(HTTP)
        spec = call.evaluated()
        method = str(spec.get("method") or "GET").upper()
        url = str(spec["url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return Failed(f"not an http(s) URL: {url!r}", retryable=False)
        headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
        headers.setdefault("Idempotency-Key", call.idempotency_key)
        timeout = float(spec.get("timeout") or 30.0)
        try:
            # The guarded client resolves the name once, refuses non-public addresses
            # (unless allow-listed) and connects to the address it checked.
            async with http.guarded.stream(
                method,
                url,
                headers=headers,
                json=spec.get("json"),
                content=spec.get("body"),
                timeout=timeout,
            ) as response:
                content = await _read(response, http.max_response_bytes)
        except BlockedDestination as exc:
            return Failed(str(exc), retryable=False)
        except TooLarge:
            return Failed(
                f"{method} {url} answered more than {http.max_response_bytes} bytes; "
                "raise ORCHESTRION_ENGINE__HTTP_MAX_RESPONSE_BYTES to read more",
                retryable=False,
            )
        except httpx.TimeoutException:
            return Failed(f"{method} {url} timed out after {timeout:g}s")
        except httpx.HTTPError as exc:
            return Failed(f"{method} {url} failed: {type(exc).__name__}: {exc}")
        output = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": _body(response, content),
        }
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            return Failed(
                f"{method} {url} answered {response.status_code}",
                retryable=retryable,
                details={"response": output},
            )
        return Succeeded(output)


class TooLarge(Exception):
    """The response body passed the cap."""


async def _read(response: httpx.Response, limit: int) -> bytes:
    """The decoded body, reading no more than ``limit`` bytes of it (raises TooLarge)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _body(response: httpx.Response, content: bytes) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
            pass
    return content.decode(response.encoding or "utf-8", errors="replace")
