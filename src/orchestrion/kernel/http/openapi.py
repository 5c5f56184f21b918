"""What every service's OpenAPI document says about errors, schemas and security.

:func:`problems` declares error statuses as ``application/problem+json`` (the document
:mod:`orchestrion.kernel.errors` renders), referring to the one ``Problem`` component.
:func:`finish_openapi` (installed by
:func:`orchestrion.kernel.http.app.create_service_app`) post-processes a service's
document so it says exactly what its routes answer:

- the statuses every route can answer are declared on each operation: 401 and 403
  unless the operation says ``security: []``, 404 when the path has an id in it, 422
  when there are parameters or a body, 400 and 413 with a body;
- FastAPI's own 422 (a JSON body the error handler never sends) goes;
- schemas nested under ``$defs`` are lifted into ``components/schemas`` and their
  ``#/$defs/...`` references rewritten, so every ``$ref`` resolves in the document;
- models that routes refer to without FastAPI seeing them (:func:`add_schemas`) join
  the components, and so do schemas built when the app is (:func:`add_raw_schemas`: the
  registered step types);
- rules only known when the app is built (a length from the settings, the search modes
  this installation has) are written into the schemas by :func:`refine_schemas`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from orchestrion.kernel.errors import PROBLEM_JSON
from orchestrion.kernel.http.problems import Problem

COMPONENTS = "#/components/schemas/{model}"
_DEFS = "#/$defs/"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

_WHEN = {
    400: "Malformed request (body, query or header)",
    401: "Not authenticated",
    403: "Missing permission",
    404: "Not found in the caller's tenant",
    405: "The path does not take this method (`Allow` lists those it takes)",
    409: "Conflicts with the current state",
    412: "`If-Match` does not match the current ETag",
    413: "The body or the data in it is over a size limit",
    422: "The request is well-formed but invalid",
    429: "Over a rate or quota limit; retry after `Retry-After` seconds",
    502: "The upstream answered badly or is not allowed",
    503: "The upstream is unavailable",
    504: "The upstream timed out",
}


class ResponseModel(BaseModel):
    """Base of response bodies whose fields with a default are always sent.

    The document marks such fields ``required`` in the response schema (FastAPI keeps
    input and output schemas apart), so that generated clients do not type an
    always-present field as optional. A field that is sometimes left out of a body must
    not use this base.
    """

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class SchemaClash(RuntimeError):
    """Two different schemas would take one name in ``components/schemas``."""


def problem(status: int) -> dict[str, Any]:
    """One ``responses`` entry: ``status`` answered as a problem+json document."""
    return {
        "description": _WHEN.get(status) or HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": {"$ref": COMPONENTS.format(model="Problem")}}},
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting ``statuses`` as problem+json."""
    return {status: problem(status) for status in statuses}


def not_modified() -> dict[int | str, dict[str, Any]]:
    """The 304 a resource with an ETag answers to a matching ``If-None-Match``."""
    return {304: {"description": "Not Modified: `If-None-Match` matches the current ETag"}}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every ``(path, method, operation)`` of ``document``."""
    return [
        (path, method, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in _HTTP_METHODS
    ]


def _merge_schema(schemas: dict[str, Any], name: str, schema: Any) -> None:
    if schemas.setdefault(name, schema) != schema:
        raise SchemaClash(f"two OpenAPI schemas are named {name!r}")


def _lift(node: Any, schemas: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_lift(item, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    lifted = {key: _lift(value, schemas) for key, value in node.items() if key != "$defs"}
    for name, schema in node.get("$defs", {}).items():
        _merge_schema(schemas, name, _lift(schema, schemas))
    ref = lifted.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        lifted["$ref"] = COMPONENTS.format(model=ref.removeprefix(_DEFS))
    return lifted


def lift_defs(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every ``$defs`` moved into ``components/schemas``, refs rewritten."""
    schemas: dict[str, Any] = {}
    lifted: dict[str, Any] = _lift(document, schemas)
    components = lifted.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.items():
        _merge_schema(components, name, schema)
    return lifted


def add_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put ``models`` (and the models they use) in ``app``'s components.

    For models routes refer to by ``$ref`` without FastAPI seeing them (bodies declared
    through ``openapi_extra``).
    """
    found: list[type[BaseModel]] = getattr(app.state, "openapi_models", [])
    app.state.openapi_models = [*found, *models]
    app.openapi_schema = None


def add_raw_schemas(app: FastAPI, schemas: dict[str, Any]) -> None:
    """Put ``schemas`` (JSON Schemas by component name) in ``app``'s components.

    They replace any schema of the same name FastAPI generated: they are what the app
    built for itself (a definition's steps as the registered step types).
    """
    found: dict[str, Any] = getattr(app.state, "openapi_raw_schemas", {})
    app.state.openapi_raw_schemas = {**found, **schemas}
    app.openapi_schema = None


SchemaPatch = Callable[[dict[str, Any]], None]


def refine_schemas(app: FastAPI, patch: SchemaPatch) -> None:
    """Have ``patch`` edit ``app``'s ``components/schemas`` once they are complete.

    For what the service enforces but only knows when it is built (settings): the
    document must say it too, or a client sending a schema-valid body is refused.
    """
    found: list[SchemaPatch] = getattr(app.state, "openapi_patches", [])
    app.state.openapi_patches = [*found, patch]
    app.openapi_schema = None


def narrow_enum(schema: str, field: str, values: Sequence[str]) -> SchemaPatch:
    """A patch: ``schema.field`` takes only ``values`` (what this installation answers,
    such as the search modes an embedding provider allows)."""

    def patch(schemas: dict[str, Any]) -> None:
        schemas[schema]["properties"][field]["enum"] = list(values)

    return patch


def declare_errors(path: str, operation: dict[str, Any]) -> None:
    """Add to ``operation`` the error statuses any route of the platform can answer."""
    answers: dict[str, Any] = operation.setdefault("responses", {})
    validation = answers.get("422", {}).get("content", {}).get("application/json")
    if validation == {"schema": {"$ref": COMPONENTS.format(model="HTTPValidationError")}}:
        del answers["422"]
    statuses: set[int] = set()
    if operation.get("security") != []:
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 413}
    for status in sorted(statuses):
        answers.setdefault(str(status), problem(status))
    operation["responses"] = dict(sorted(answers.items()))


def finish_document(
    document: dict[str, Any],
    models: tuple[type[BaseModel], ...] = (),
    *,
    raw: dict[str, Any] | None = None,
    patches: tuple[SchemaPatch, ...] = (),
) -> dict[str, Any]:
    """``document`` made exact: see the module docstring."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    every: tuple[type[BaseModel], ...] = (Problem, *models)
    for model in every:
        schema = model.model_json_schema(by_alias=True, ref_template=COMPONENTS)
        for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            _merge_schema(schemas, name, definition)
    schemas.update(raw or {})
    for patch in patches:
        patch(schemas)
    for path, _, operation in operations(document):
        declare_errors(path, operation)
    if COMPONENTS.format(model="HTTPValidationError") not in json.dumps(document["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return lift_defs(document)


def finish_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return its document finished by :func:`finish_document`."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None or not getattr(app.state, "openapi_finished", False):
            app.openapi_schema = None
            app.openapi_schema = finish_document(
                generate(),
                tuple(getattr(app.state, "openapi_models", ())),
                raw=getattr(app.state, "openapi_raw_schemas", None),
                patches=tuple(getattr(app.state, "openapi_patches", ())),
            )
            app.state.openapi_finished = True
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
