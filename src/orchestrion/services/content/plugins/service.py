"""Rules of WebAssembly plugins: what an upload must be, and how a call runs.

Functions take a ``tenant_id`` rather than a principal so a workflow step can call a
plugin for its execution's tenant the way the HTTP routes do for the caller's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

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


async def create_plugin(
    session: AsyncSession,
    *,
    tenant_id: str,
    data: PluginCreate,
    module: bytes,
    runtime: PluginRuntime,
) -> ContentPlugin:
    """Store a module that compiles and instantiates here; 409 on a taken name+version."""
    if await repository.exists(session, tenant_id=tenant_id, name=data.name, version=data.version):
        raise _conflict(data)
    limits = runtime.limits(data.limits.model_dump(exclude_none=True))
    functions = await runtime.inspect(module, limits)
    plugin = ContentPlugin(
        tenant_id=tenant_id,
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
    session: AsyncSession,
    *,
    plugin: ContentPlugin,
    function: str,
    input: Any,
    runtime: PluginRuntime,
    has_input: bool = True,
) -> dict[str, Any]:
    """Run one exported function; ``{"output", "duration_ms"}``.

    422 for a function the plugin does not export, and when the call fails
    (:class:`~orchestrion.services.content.plugins.errors.PluginCallFailed`).
    """
    if function not in plugin.functions:
        raise UnknownFunction(
            f"plugin '{plugin.name}' exports no function '{function}'",
            errors=[{"loc": ["body", "function"], "msg": f"one of {plugin.functions}"}],
        )
    plugin_id = plugin.id

    async def load_module() -> bytes:
        return await repository.module_bytes(session, plugin_id=plugin_id)

    result: CallResult = await runtime.call(
        sha256=plugin.sha256,
        limits=runtime.limits(plugin.limits),
        function=function,
        data=encode_input(input) if has_input else b"",
        load_module=load_module,
    )
    return {"output": decode_output(result.output), "duration_ms": result.duration_ms}


def digest(module: bytes) -> str:
    """The SHA-256 of a module, hex (its identity in the compiled-module cache)."""
    return hashlib.sha256(module).hexdigest()
