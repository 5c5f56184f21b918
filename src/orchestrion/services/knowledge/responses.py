"""The error statuses routes declare, each a problem+json document."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from orchestrion.kernel.http.problems import Problem

_PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``statuses`` plus 401, 403 and 422 (any parameter can be
    malformed), all problem documents, replacing FastAPI's default 422 schema."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {"application/problem+json": _PROBLEM},
        }
        for status in sorted({401, 403, 422, *statuses})
    }
