"""One OpenAPI document for the whole platform, merged from every service's."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from orchestrion.gateway.upstream import Upstream
from orchestrion.kernel.http.openapi import declare_errors, lift_defs, operations

_HIDDEN_PREFIXES = ("/internal/", "/health")


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


async def merged_document(
    upstreams: Mapping[str, Upstream],
    *,
    title: str,
    version: str,
    own_paths: dict[str, Any],
    public: Callable[[str, str], bool] = lambda method, path: False,
) -> dict[str, Any]:
    """Every service's public paths and schemas, plus the gateway's own and its security.

    ``public(method, path)`` tells the operations that need no credentials (the route
    table's public rules); every operation declares the errors it can answer and every
    ``$ref`` resolves in the merged document (services' ``$defs`` lifted into components).
    """
    paths: dict[str, Any] = dict(own_paths)
    schemas: dict[str, Any] = {}
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
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "tags": tags,
    }
    _mark_public(document, public)
    for path, _, operation in operations(document):
        declare_errors(path, operation)
    return lift_defs(document)
