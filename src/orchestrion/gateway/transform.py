"""Per-route rewrites: the path prefix, request and response headers, response fields.

The field allow-list trims a JSON object to the listed keys; for a list answer
(``{"data": [...], "meta", "links"}``) it trims each item and keeps the envelope. It
needs the whole body, so it applies to JSON answers up to ``MAX_FILTERED_BYTES``;
larger ones pass unchanged (and are logged), never cut.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import Message, Scope, Send

from orchestrion.gateway.routes import Route, Transform

logger = logging.getLogger("orchestrion.gateway")
MAX_FILTERED_BYTES = 4 * 1024 * 1024


def rewrite_request(route: Route, transform: Transform, scope: Scope) -> Scope:
    """The scope a service sees: prefix rewritten and request headers changed."""
    changed = dict(scope)
    if transform.rewrite is not None:
        rest = scope["path"][len(route.prefix.rstrip("/")) :]
        changed["path"] = transform.rewrite.rstrip("/") + rest
        changed["raw_path"] = changed["path"].encode()
    if transform.request_remove or transform.request_set:
        replaced = {name.encode() for name, _ in transform.request_set}
        headers = [
            (k, v)
            for k, v in scope["headers"]
            if k.decode("latin-1") not in transform.request_remove and k not in replaced
        ]
        headers.extend((k.encode(), v.encode()) for k, v in transform.request_set)
        changed["headers"] = headers
    return changed


def rewrite_response(transform: Transform, send: Send) -> Send:
    """A ``send`` that applies the route's response header changes and field allow-list."""
    start: Message | None = None
    chunks: list[bytes] = []
    size = 0
    filtering = False

    async def rewriting_send(message: Message) -> None:
        nonlocal start, size, filtering
        if message["type"] == "http.response.start":
            headers = _changed_headers(transform, message.get("headers", []))
            message = {**message, "headers": headers}
            content_type = dict(headers).get(b"content-type", b"")
            filtering = transform.response_fields is not None and b"json" in content_type
            if not filtering:
                await send(message)
                return
            start = message
            return
        if not filtering or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_FILTERED_BYTES:
            logger.warning("response too large to filter its fields; passed unchanged")
            filtering = False
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})
            return
        if message.get("more_body", False):
            return
        body = _filtered(b"".join(chunks), transform.response_fields or frozenset())
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return rewriting_send


def _changed_headers(
    transform: Transform, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    if not transform.response_remove and not transform.response_set:
        return headers
    replaced = {name for name, _ in transform.response_set}
    kept = [
        (k, v)
        for k, v in headers
        if (name := k.decode("latin-1").lower()) not in transform.response_remove
        and name not in replaced
    ]
    kept.extend((k.encode(), v.encode()) for k, v in transform.response_set)
    return kept


def _filtered(body: bytes, fields: frozenset[str]) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        return body
    return json.dumps(_trim(document, fields), separators=(",", ":")).encode()


def _trim(document: Any, fields: frozenset[str]) -> Any:
    if isinstance(document, list):
        return [_trim(item, fields) for item in document]
    if not isinstance(document, dict):
        return document
    if isinstance(document.get("data"), list) and "meta" in document:
        return {**document, "data": [_trim(item, fields) for item in document["data"]]}
    if "type" in document and "status" in document and "detail" in document:
        return document  # a problem: its fields are the contract
    return {k: v for k, v in document.items() if k in fields or k == "id"}
