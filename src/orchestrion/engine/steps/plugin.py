"""The ``plugin`` step: call one function of a tenant's WebAssembly plugin.

``with``: ``plugin`` (its id, or its name: the newest version of that name),
``function``, ``input`` (any JSON). Output: the plugin's output (parsed JSON when it
wrote JSON, else a string). A call that passes its time limit or memory cap, or traps,
fails the step without retries: the same input would do the same again.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import SERVICES, ServiceCallError
from orchestrion.engine.steps._services import call_service, refused, text_field

_NAME: dict[str, Any] = {"type": "string", "minLength": 1}
_PERMISSIONS = ("plugins:read", "executions:run")


def _output(answer: Any) -> Outcome:
    if not isinstance(answer, dict) or "output" not in answer:
        return Failed("the content service answered an unexpected plugin result", retryable=False)
    return Succeeded(answer["output"])


async def _plugin_id(call: StepCall, plugin: str) -> str:
    """``plugin`` itself when a plugin has that id, else the newest plugin of that name."""
    services = call.need(SERVICES)
    listed = await services.call(
        "content",
        "GET",
        "/api/v1/plugins",
        call=call,
        permissions=_PERMISSIONS,
        params={"name": plugin, "sort": "created_at:desc", "limit": "1"},
    )
    found = listed.get("data") if isinstance(listed, dict) else None
    if found:
        return str(found[0]["id"])
    return plugin


class PluginStep(StepType):
    """Call ``function`` of plugin ``plugin`` with ``input``."""

    name = "plugin"
    description = (
        "Call `function` of WebAssembly plugin `plugin` (id or name) with `input`; "
        "output: the plugin's output."
    )
    with_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"plugin": expr_or(_NAME), "function": expr_or(_NAME), "input": {}},
        "required": ["plugin", "function"],
        "additionalProperties": False,
    }
    requires = (SERVICES,)

    async def run(self, call: StepCall) -> Outcome:
        """Find the plugin, then ask the content service to run the call."""
        spec = call.evaluated()
        plugin, function = text_field(spec, "plugin"), text_field(spec, "function")
        if plugin is None or function is None:
            return Failed("'plugin' and 'function' must be non-empty strings", retryable=False)
        if SERVICES not in call.resources:
            return Failed("the content service is not reachable from this process", False)
        try:
            plugin_id = await _plugin_id(call, plugin)
        except ServiceCallError as exc:
            return refused(exc)
        return await call_service(
            call,
            "content",
            "POST",
            f"/api/v1/plugins/{quote(plugin_id, safe='')}/call",
            permissions=_PERMISSIONS,
            json={"function": function, "input": spec.get("input")},
            shape=_output,
        )
