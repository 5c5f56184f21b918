"""Rules of WebAssembly plugins: what an upload must be, and how a call runs.

Functions take a ``tenant_id`` rather than a principal so a workflow step can call a
plugin for its execution's tenant the way the HTTP routes do for the caller's.

Compiling an upload and running a call take a database session only around their
queries, never while WebAssembly runs: on SQLite the process's sessions queue on one
lock, so a plugin spinning for seconds inside a session would stall every request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.ids import isoformat
from orchestrion.services.content.plugins import repository
from orchestrion.services.content.plugins.errors import (
    PluginExists,
    PluginNotFound,
    UnknownFunction,
)
from orchestrion.services.content.plugins.models import ContentPlugin
from orchestrion.services.content.plugins.runtime import (
    CallResult,
    Limits,
    PluginRuntime,
    decode_output,
    encode_input,
)
from orchestrion.services.content.plugins.schemas import PluginCreate


def plugin_to_dict(plugin: ContentPlugin, runtime: PluginRuntime) -> dict[str, Any]:
    """The public JSON of a plugin; ``limits`` are those calls run under today."""
    return {
        "id": plugin.id,
        "name": plugin.name,
        "version": plugin.version,
        "description": plugin.description,
        "functions": list(plugin.functions),
        "sha256": plugin.sha256,
        "size_bytes": plugin.size_bytes,
        "limits": runtime.limits(plugin.limits).as_dict(),
        "created_at": isoformat(plugin.created_at),
    }


def _conflict(data: PluginCreate) -> PluginExists:
    return PluginExists(f"plugin '{data.name}' version '{data.version}' exists")


@dataclass(frozen=True, slots=True)
class CheckedModule:
    """An uploaded module known to compile and instantiate in the sandbox."""

    module: bytes
    limits: Limits
    functions: list[str]


async def check_module(
    *, data: PluginCreate, module: bytes, runtime: PluginRuntime
) -> CheckedModule:
    """Compile and instantiate ``module`` under its capped limits (no session held); 422
    when it is not WebAssembly, does not compile, or imports what the sandbox lacks."""
    limits = runtime.limits(data.limits.model_dump(exclude_none=True))
    functions = await runtime.inspect(module, limits)
    return CheckedModule(module=module, limits=limits, functions=functions)


async def create_plugin(
    session: AsyncSession,
    *,
    tenant_id: str,
    created_by: str | None,
    data: PluginCreate,
    checked: CheckedModule,
) -> ContentPlugin:
    """Store a checked module, uploaded by ``created_by`` (a principal's subject); 409
    when the tenant has this name and version."""
    if await repository.exists(session, tenant_id=tenant_id, name=data.name, version=data.version):
        raise _conflict(data)
    module, limits, functions = checked.module, checked.limits, checked.functions
    plugin = ContentPlugin(
        tenant_id=tenant_id,
        created_by=created_by,
        name=data.name,
        version=data.version,
        description=data.description,
        sha256=digest(module),
        size_bytes=len(module),
        module=module,
        functions=functions,
        limits=limits.as_dict(),
    )
    session.add(plugin)
    try:
        await session.flush()
    except IntegrityError:
        raise _conflict(data) from None
    return plugin


async def get_plugin(session: AsyncSession, *, tenant_id: str, plugin_id: str) -> ContentPlugin:
    """A plugin of the tenant; 404 otherwise (another tenant's too)."""
    plugin = await repository.get(session, tenant_id=tenant_id, plugin_id=plugin_id)
    if plugin is None:
        raise PluginNotFound(f"no plugin {plugin_id}")
    return plugin


async def find_plugin(session: AsyncSession, *, tenant_id: str, ref: str) -> ContentPlugin:
    """A plugin by id, else the latest version by name (how a workflow step names one)."""
    plugin = await repository.get(session, tenant_id=tenant_id, plugin_id=ref)
    if plugin is None:
        plugin = await repository.latest_named(session, tenant_id=tenant_id, name=ref)
    if plugin is None:
        raise PluginNotFound(f"no plugin with id or name '{ref}'")
    return plugin


async def delete_plugin(session: AsyncSession, *, plugin: ContentPlugin) -> None:
    """Delete a plugin (its compiled module ages out of the cache)."""
    await session.delete(plugin)
    await session.flush()


async def call_plugin(
    database: Database,
    *,
    tenant_id: str,
    ref: str,
    function: str,
    input: Any,
    runtime: PluginRuntime,
    has_input: bool = True,
    by_name: bool = False,
) -> dict[str, Any]:
    """Run one exported function of the tenant's plugin ``ref``; ``{"output", "duration_ms"}``.

    ``ref`` is an id, or with ``by_name`` also a name (its latest version). 404 for no such
    plugin, 422 for a function it does not export and when the call fails
    (:class:`~orchestrion.services.content.plugins.errors.PluginCallFailed`).
    """
    async with database.session() as session:
        if by_name:
            plugin = await find_plugin(session, tenant_id=tenant_id, ref=ref)
        else:
            plugin = await get_plugin(session, tenant_id=tenant_id, plugin_id=ref)
        plugin_id, name, sha256 = plugin.id, plugin.name, plugin.sha256
        functions, limits = list(plugin.functions), runtime.limits(plugin.limits)
    if function not in functions:
        raise UnknownFunction(
            f"plugin '{name}' exports no function '{function}'",
            errors=[{"loc": ["body", "function"], "msg": f"one of {functions}"}],
        )

    async def load_module() -> bytes:
        async with database.session() as session:
            return await repository.module_bytes(session, plugin_id=plugin_id)

    result: CallResult = await runtime.call(
        sha256=sha256,
        limits=limits,
        function=function,
        data=encode_input(input) if has_input else b"",
        load_module=load_module,
    )
    return {"output": decode_output(result.output), "duration_ms": result.duration_ms}


def digest(module: bytes) -> str:
    """The SHA-256 of a module, hex (its identity in the compiled-module cache)."""
    return hashlib.sha256(module).hexdigest()
