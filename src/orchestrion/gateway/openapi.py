"""One OpenAPI document for the whole platform, merged from every service's."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrion.gateway.upstream import Upstream
from orchestrion.kernel.http.openapi import declare_errors, lift_defs, operations, problem

_HIDDEN_PREFIXES = ("/internal/", "/health")
_SCHEMAS = "#/components/schemas/{name}"

#: The gateway's own schemas: what its health endpoints answer.
OWN_SCHEMAS: dict[str, Any] = {
    "ServiceHealth": {
        "type": "object",
        "title": "ServiceHealth",
        "description": "One service's health as the gateway sees it.",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
            "latency_ms": {"type": "number"},
            "database": {"type": "string"},
            "error": {"type": "string"},
            "gateway": {"type": "object", "additionalProperties": True},
        },
        "required": ["status"],
        "additionalProperties": True,
    },
    "PlatformHealth": {
        "type": "object",
        "title": "PlatformHealth",
        "description": "Every service's health, summarised: ok, degraded (some down) or down.",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
            "services": {
                "type": "object",
                "additionalProperties": {"$ref": _SCHEMAS.format(name="ServiceHealth")},
            },
        },
        "required": ["status", "services"],
    },
    "Liveness": {
        "type": "object",
        "title": "Liveness",
        "description": "The gateway process answers.",
        "properties": {"status": {"type": "string", "const": "ok"}},
        "required": ["status"],
    },
}


def _json(name: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _SCHEMAS.format(name=name)}}},
    }


def _own_path(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {"summary": summary, "tags": ["gateway"], "security": [], "responses": responses}
    }


#: The gateway's own endpoints, as the merged document declares them.
OWN_PATHS: dict[str, Any] = {
    "/health": _own_path("Aggregated health of every service", {"200": _json("PlatformHealth")}),
    "/health/live": _own_path("Liveness: the gateway process answers", {"200": _json("Liveness")}),
    "/health/ready": _own_path(
        "Readiness: every service is healthy",
        {
            "200": _json("PlatformHealth", "Every service is healthy"),
            "503": _json("PlatformHealth", "Some service is not healthy"),
        },
    ),
    "/metrics": _own_path(
        "Prometheus metrics",
        {
            "200": {
                "description": "The Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": problem(401),
        },
    ),
}


def _header(description: str, kind: str = "integer") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


#: What the rate limiter sends with its 429 (``policies/ratelimit.py``).
RATE_LIMIT_HEADERS: dict[str, Any] = {
    "Retry-After": _header("Seconds to wait before retrying"),
    "RateLimit-Limit": _header("Requests allowed in the window"),
    "RateLimit-Remaining": _header("Requests left in the window"),
    "RateLimit-Reset": _header("Seconds until the window resets"),
}
#: What the gateway itself can answer for any route it proxies: over a rate limit, or the
#: upstream answering badly, unavailable (breaker open, no healthy instance) or too slow.
PROXY_STATUSES = (429, 502, 503, 504)


def declare_proxy_errors(operation: dict[str, Any]) -> None:
    """Add to a proxied ``operation`` the statuses the gateway answers in its place."""
    answers: dict[str, Any] = operation.setdefault("responses", {})
    for status in PROXY_STATUSES:
        answer = answers.setdefault(str(status), problem(status))
        if status == 429:
            answer["headers"] = {**RATE_LIMIT_HEADERS, **answer.get("headers", {})}
    operation["responses"] = dict(sorted(answers.items()))


def _rename_schemas(
    document: dict[str, Any], taken: Mapping[str, Any], service: str
) -> dict[str, Any]:
    """Prefix this service's schemas that clash with another's, rewriting their refs."""
    schemas = document.get("components", {}).get("schemas", {})
    clashes = [name for name, schema in schemas.items() if name in taken and taken[name] != schema]
    if not clashes:
        return document
    text = json.dumps(document)
    for name in clashes:
        text = text.replace(
            f'"#/components/schemas/{name}"', f'"#/components/schemas/{service}_{name}"'
        )
    renamed: dict[str, Any] = json.loads(text)
    moved = renamed["components"]["schemas"]
    for name in clashes:
        moved[f"{service}_{name}"] = moved.pop(name)
    return renamed


def _mark_public(document: dict[str, Any], public: Callable[[str, str], bool]) -> None:
    """Say ``security: []`` on the operations the gateway lets through without credentials."""
    for path, method, operation in operations(document):
        if public(method.upper(), path):
            operation["security"] = []


def _mirror_versions(paths: dict[str, Any], versions: Sequence[tuple[str, str]]) -> None:
    """Copy the paths under each ``target`` to ``prefix`` (a route rewriting one to the other).

    The copies keep their schemas; their operation ids take the prefix as a suffix, so
    every id stays unique.
    """
    for prefix, target in versions:
        base = target.rstrip("/")
        for path, item in list(paths.items()):
            if path != base and not path.startswith(base + "/"):
                continue
            mirrored = prefix.rstrip("/") + path[len(base) :]
            if mirrored in paths:
                continue
            copy = json.loads(json.dumps(item))
            suffix = re.sub(r"[^A-Za-z0-9]+", "_", prefix).strip("_")
            for operation in copy.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    operation["operationId"] = f"{operation['operationId']}__{suffix}"
            paths[mirrored] = copy


async def merged_document(
    upstreams: Mapping[str, Upstream],
    *,
    title: str,
    version: str,
    own_paths: dict[str, Any],
    public: Callable[[str, str], bool] = lambda method, path: False,
    deprecated: Callable[[str], bool] = lambda path: False,
    versions: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Every service's public paths and schemas, plus the gateway's own and its security.

    ``public(method, path)`` tells the operations that need no credentials (the route
    table's public rules); every operation declares the errors it can answer and every
    ``$ref`` resolves in the merged document (services' ``$defs`` lifted into components).
    ``versions`` are routes serving another prefix's API under their own (``/api/v2/x``
    rewritten to ``/api/v1/x``): their paths are listed too. Operations under a
    ``deprecated(path)`` route say so.
    """
    paths: dict[str, Any] = dict(own_paths)
    schemas: dict[str, Any] = dict(OWN_SCHEMAS)
    tags: list[dict[str, Any]] = []
    for name in sorted(upstreams):
        response = await upstreams[name].client.get("/openapi.json")
        response.raise_for_status()
        document = _rename_schemas(response.json(), schemas, name)
        for path, item in document.get("paths", {}).items():
            if not path.startswith(_HIDDEN_PREFIXES):
                paths[path] = item
        schemas.update(document.get("components", {}).get("schemas", {}))
        tags.append({"name": name, "description": f"The {name} service."})
    _mirror_versions(paths, versions)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "One endpoint for every Orchestrion service. "
            "Errors are application/problem+json (RFC 9457).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "hmac": {
                    "type": "http",
                    "scheme": "Orchestrion-HMAC",
                    "description": "Signed requests for server-to-server callers: "
                    '`Authorization: Orchestrion-HMAC keyId="<id>", ts=<unix seconds>, '
                    'nonce="<random>", signature="<base64 HMAC-SHA256>"` over the method, '
                    "path and query, timestamp, nonce and the body's RFC 9530 "
                    "`Content-Digest` (sha-256), with a key from `POST /api/v1/auth/hmac-keys`"
                    " (docs/identity.md).",
                },
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}, {"hmac": []}],
        "tags": tags,
    }
    _mark_public(document, public)
    for path, _, operation in operations(document):
        if deprecated(path):
            operation["deprecated"] = True
        if path not in own_paths:
            declare_errors(path, operation)
            declare_proxy_errors(operation)
    return lift_defs(document)
