"""What the workflows routes declare about their answers in OpenAPI.

``problems(404, 409)`` documents error statuses as ``application/problem+json`` (the
document :mod:`orchestrion.kernel.errors` renders), referring to the ``Problem``
component that :func:`finish_openapi` adds to the app's OpenAPI document.
``Items[T]`` types the unpaginated ``{"data": [...]}`` answers; paginated lists use
:class:`orchestrion.kernel.http.lists.ListPage`.

Routes answer with the JSON their service functions build (``JSONResponse``,
``resource_response``), so bytes and ETags stay exactly what they were; the declared
``response_model`` is the contract, checked against real answers by the tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from orchestrion.kernel.errors import PROBLEM_JSON

Item = TypeVar("Item")
COMPONENTS = "#/components/schemas/{model}"

_WHEN = {
    400: "Malformed request (body, query or header)",
    401: "Not authenticated",
    403: "Missing permission",
    404: "Not found in the caller's tenant",
    409: "Conflicts with the current state",
    412: "`If-Match` does not match the current ETag",
    413: "The body or the data in it is over a size limit",
    422: "The request is well-formed but invalid",
    429: "Over a rate or quota limit; retry after `Retry-After` seconds",
    502: "The upstream answered badly or is not allowed",
    503: "The upstream is unavailable",
    504: "The upstream timed out",
}


class EventStream(StreamingResponse):
    """A ``text/event-stream`` answer (Server-Sent Events), for ``response_class``.

    Not FastAPI's ``EventSourceResponse``: FastAPI takes a route declaring that one to
    be a generator of events, while these routes build and return their own stream.
    """

    media_type = "text/event-stream"


class Items(BaseModel, Generic[Item]):
    """An unpaginated list: ``{"data": [...]}``."""

    data: list[Item]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting ``statuses`` as problem+json."""
    return {
        status: {
            "description": _WHEN.get(status) or HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": COMPONENTS.format(model="Problem")}}},
        }
        for status in statuses
    }


def not_modified() -> dict[int | str, dict[str, Any]]:
    """The 304 a resource with an ETag answers to a matching ``If-None-Match``."""
    return {304: {"description": "Not Modified: `If-None-Match` matches the current ETag"}}


def finish_openapi(app: FastAPI, *models: type[BaseModel]) -> None:
    """Make ``app``'s OpenAPI document say exactly what its routes answer.

    ``models`` (and the models they use) join the components: routes refer to them by
    ``$ref`` without FastAPI seeing them (the problem document, bodies declared through
    ``openapi_extra``). The 422 FastAPI adds to every route with parameters goes: it
    describes a JSON body the error handler never sends, and routes that can answer 422
    declare it themselves, as problem+json.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(by_alias=True, ref_template=COMPONENTS)
            found = {**schema.pop("$defs", {}), model.__name__: schema}
            for name, definition in found.items():
                if schemas.setdefault(name, definition) != definition:
                    raise RuntimeError(f"two OpenAPI schemas are named {name!r}")
        for item in document.get("paths", {}).values():
            for operation in item.values():
                answers = operation.get("responses", {})
                if answers.get("422", {}).get("content", {}).get("application/json") == {
                    "schema": {"$ref": COMPONENTS.format(model="HTTPValidationError")}
                }:
                    del answers["422"]
        if COMPONENTS.format(model="HTTPValidationError") not in json.dumps(document["paths"]):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
