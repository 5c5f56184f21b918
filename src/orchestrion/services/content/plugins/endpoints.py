"""HTTP routes of WebAssembly plugins: requests to service calls, nothing more.

The upload is read by hand rather than through FastAPI's form parameters so its size is
checked while it streams in (a 413 without spooling gigabytes to disk first), and a
malformed field is the usual 422 problem.

Uploads and calls open their database sessions themselves, around the queries only: a
session held while a module streams in, compiles or runs would, on SQLite, hold the
process's one transaction lock that long (see :mod:`orchestrion.kernel.db.engine`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from orchestrion.kernel import audit
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import ServiceUnavailable, validation_errors
from orchestrion.kernel.http.deps import CurrentPrincipal, Db, Session
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.idempotency import HEADER, run_idempotent
from orchestrion.kernel.http.lists import ListPage, fetch_page, list_body, parse_list_query
from orchestrion.kernel.http.openapi import problems
from orchestrion.services.content.plugins import repository, service
from orchestrion.services.content.plugins.errors import InvalidUpload, ModuleTooLarge
from orchestrion.services.content.plugins.runtime import PluginRuntime
from orchestrion.services.content.plugins.schemas import (
    DEFAULT_VERSION,
    NAME_PATTERN,
    VERSION_PATTERN,
    Plugin,
    PluginCall,
    PluginCallResult,
    PluginCreate,
)

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"])
BASE = "/api/v1/plugins"
#: Room for the form's other fields and multipart framing around the module.
FORM_SLACK = 64 * 1024
_FIELDS = ("name", "version", "description", "limits")

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["module", "name"],
                    "properties": {
                        "module": {
                            "type": "string",
                            "format": "binary",
                            "description": "The `.wasm` binary (an Extism plugin).",
                        },
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 100,
                            "pattern": NAME_PATTERN,
                        },
                        "version": {
                            "type": "string",
                            "default": DEFAULT_VERSION,
                            "minLength": 1,
                            "maxLength": 64,
                            "pattern": VERSION_PATTERN,
                        },
                        "description": {"type": "string", "maxLength": 2000},
                        "limits": {
                            "type": "string",
                            "description": 'JSON `{"timeout_ms", "max_memory_pages"}`; '
                            "values above the platform's maxima are lowered to them.",
                        },
                    },
                }
            }
        },
    }
}


def get_runtime(request: Request) -> PluginRuntime:
    """The app's plugin runtime (``app.state.plugin_runtime``)."""
    runtime: PluginRuntime | None = getattr(request.app.state, "plugin_runtime", None)
    if runtime is None:
        raise ServiceUnavailable("plugins are not enabled in this service")
    return runtime


Runtime = Annotated[PluginRuntime, Depends(get_runtime)]


def _audit(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    action: str,
    plugin_id: str,
    name: str,
) -> None:
    audit.record_request(
        session,
        request,
        principal,
        action=action,
        resource_type="plugin",
        resource_id=plugin_id,
        data={"name": name},
    )


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise ModuleTooLarge(f"the upload is over {limit} bytes")
        yield chunk


def _upload_fields(form: FormData) -> PluginCreate:
    values: dict[str, Any] = {}
    for field in _FIELDS:
        value = form.get(field)
        if isinstance(value, UploadFile):
            raise InvalidUpload(
                f"'{field}' must be a form field, not a file",
                errors=[{"loc": ["body", field], "msg": "not a text field"}],
            )
        if value is not None and (value != "" or field == "name"):
            values[field] = value
    try:
        if "limits" in values:
            values["limits"] = json.loads(values["limits"])
        return PluginCreate.model_validate(values)
    except ValueError as exc:
        errors = (
            validation_errors([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])
            if isinstance(exc, ValidationError)
            else [{"loc": ["body", "limits"], "msg": "not JSON"}]
        )
        raise InvalidUpload("invalid upload fields", errors=errors) from None


async def _read_upload(request: Request, max_module_bytes: int) -> tuple[PluginCreate, bytes]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidUpload("send the module as multipart/form-data")
    limit = max_module_bytes + FORM_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ModuleTooLarge(f"the upload is over {limit} bytes")
    parser = MultiPartParser(
        request.headers, _limited(request, limit), max_files=1, max_fields=len(_FIELDS)
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidUpload(f"malformed form: {exc.message}") from None
    try:
        data = _upload_fields(form)
        upload = form.get("module")
        if not isinstance(upload, UploadFile):
            raise InvalidUpload(
                "a 'module' file is required",
                errors=[{"loc": ["body", "module"], "msg": "missing file"}],
            )
        module = await upload.read(max_module_bytes + 1)
    finally:
        await form.close()
    if len(module) > max_module_bytes:
        raise ModuleTooLarge(
            f"the module is over {max_module_bytes} bytes (plugins.max_module_bytes)"
        )
    return data, module


@router.post(
    "",
    status_code=201,
    response_model=Plugin,
    responses=problems(409, 413, 422),
    openapi_extra=_UPLOAD_BODY,
    summary="Upload a plugin",
)
async def create_plugin(
    request: Request, database: Db, principal: CurrentPrincipal, runtime: Runtime
) -> Response:
    """A WebAssembly module (an Extism plugin) with a name and version; 422 when it does
    not compile or needs imports the sandbox does not give (WASI, host functions)."""
    principal.require(Permission.PLUGINS_WRITE)
    data, module = await _read_upload(request, runtime.settings.max_module_bytes)
    checked = await service.check_module(data=data, module=module, runtime=runtime)
    async with database.session() as session:

        async def produce() -> tuple[int, Any]:
            plugin = await service.create_plugin(
                session,
                tenant_id=principal.tenant_id,
                created_by=principal.subject,
                data=data,
                checked=checked,
            )
            _audit(request, session, principal, "plugin.created", plugin.id, plugin.name)
            return 201, service.plugin_to_dict(plugin, runtime)

        keyed = request.headers.get(HEADER) is not None
        payload = {**data.model_dump(mode="json"), "module": service.digest(module)}
        response = await run_idempotent(
            session,
            request=request,
            scope=f"{principal.tenant_id}:{principal.subject}:POST:{BASE}",
            payload=payload if keyed else None,
            produce=produce,
        )
    if response.status_code == 201:
        response.headers["Location"] = f"{BASE}/{json.loads(bytes(response.body))['id']}"
    return response


@router.get("", response_model=ListPage[Plugin], responses=problems(400), summary="List plugins")
async def list_plugins(
    request: Request, session: Session, principal: CurrentPrincipal, runtime: Runtime
) -> Response:
    """Plugins of the caller's tenant; filters `name`, `version`."""
    principal.require(Permission.PLUGINS_READ)
    query = parse_list_query(request, repository.PLUGIN_LIST)
    page = await fetch_page(
        session, repository.plugins_of(principal.tenant_id), repository.PLUGIN_LIST, query
    )
    items = [service.plugin_to_dict(p, runtime) for p in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.get("/{plugin_id}", response_model=Plugin, responses=problems(404), summary="Get a plugin")
async def get_plugin(
    plugin_id: str,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    runtime: Runtime,
) -> Response:
    """One plugin, with its ETag."""
    principal.require(Permission.PLUGINS_READ)
    plugin = await service.get_plugin(session, tenant_id=principal.tenant_id, plugin_id=plugin_id)
    return resource_response(request, service.plugin_to_dict(plugin, runtime))


@router.delete(
    "/{plugin_id}", status_code=204, responses=problems(404, 412), summary="Delete a plugin"
)
async def delete_plugin(
    plugin_id: str,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    runtime: Runtime,
) -> Response:
    """Delete a plugin; `If-Match` honoured."""
    principal.require(Permission.PLUGINS_WRITE)
    plugin = await service.get_plugin(session, tenant_id=principal.tenant_id, plugin_id=plugin_id)
    check_if_match(request, service.plugin_to_dict(plugin, runtime))
    await service.delete_plugin(session, plugin=plugin)
    _audit(request, session, principal, "plugin.deleted", plugin.id, plugin.name)
    return Response(status_code=204)


@router.post(
    "/{plugin_id}/call",
    response_model=PluginCallResult,
    responses=problems(404, 422),
    summary="Call a plugin's function",
)
async def call_plugin(
    plugin_id: str,
    data: PluginCall,
    database: Db,
    principal: CurrentPrincipal,
    runtime: Runtime,
) -> Response:
    """Run one exported function on `input` under the plugin's limits. A call past its
    time limit or memory cap, or that traps, is a 422 whose `detail` names the cause:
    `timeout`, `memory`, `trap: <message>` (or `error: <message>`, the plugin's own)."""
    principal.require(Permission.PLUGINS_READ)
    principal.require(Permission.EXECUTIONS_RUN)
    result = await service.call_plugin(
        database,
        tenant_id=principal.tenant_id,
        ref=plugin_id,
        function=data.function,
        input=data.input,
        has_input="input" in data.model_fields_set,
        runtime=runtime,
    )
    return JSONResponse(result)
