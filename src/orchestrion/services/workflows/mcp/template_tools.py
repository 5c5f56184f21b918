"""Templates as MCP tools: every template the caller sees is a tool that makes a workflow
of it and runs it.

The tool's arguments are ``parameters`` (the template's parameter schema) and ``inputs``
(the made workflow's inputs). A workflow is made once per template version and set of
parameters: its name carries a digest of them, and a later call with the same ones runs
the workflow made before (found among the tenant's runnable workflows). The templates
service is asked as the caller (its permissions, its tenant), so the template must be
visible to the caller and making a workflow needs ``workflows:write``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from mcp_types import Tool

from orchestrion.engine import ServiceCallError
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.workflows.definitions.models import Workflow
from orchestrion.services.workflows.runtime import PeerCalls

logger = logging.getLogger(__name__)

PREFIX = "template."
#: Templates offered as tools, the most installed first.
MAX_TEMPLATES = 100
#: The longest workflow name the workflows service takes.
_NAME_LENGTH = 200
_NEEDS = (Permission.TEMPLATES_READ, Permission.WORKFLOWS_WRITE, Permission.EXECUTIONS_RUN)


def tool_name(template: dict[str, Any]) -> str:
    """``template.<slug or name>``, made safe for tool names."""
    base = str(template.get("slug") or template["name"])
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_.-")[:48] or "template"
    return PREFIX + safe


def to_tool(name: str, template: dict[str, Any]) -> Tool:
    """The tool: ``parameters`` as the template declares them, ``inputs`` free."""
    parameters = dict(template.get("parameters") or {})
    parameters.setdefault("type", "object")
    description = template.get("description") or f"Run the template '{template['name']}'."
    return Tool(
        name=name,
        title=template["name"],
        description=(
            f"{description.strip()}\n\nMakes a workflow of this template (template "
            f"{template['id']}, version {template['version']}) with `parameters` and runs it "
            "with `inputs`."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "parameters": parameters,
                "inputs": {"type": "object", "description": "The workflow's inputs."},
            },
            "required": ["parameters"],
        },
        meta={"orchestrion/template_id": template["id"]},
    )


def workflow_name(template: dict[str, Any], parameters: dict[str, Any]) -> str:
    """The made workflow's name: the template's, and a digest of version and parameters."""
    canonical = json.dumps([template["id"], template["version"], parameters], sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    suffix = f" ({digest})"
    return str(template["name"])[: _NAME_LENGTH - len(suffix)] + suffix


class TemplateTools:
    """The templates a caller may run as tools, through the templates service."""

    def __init__(self, peers: PeerCalls) -> None:
        self.peers = peers

    async def listed(self, principal: Principal) -> dict[str, dict[str, Any]]:
        """Tool name → template; none without the permissions or the templates service."""
        if not all(principal.can(permission) for permission in _NEEDS):
            return {}
        try:
            body = await self.peers.request(
                "templates",
                "GET",
                "/api/v1/templates",
                principal=principal,
                params={"limit": str(MAX_TEMPLATES), "sort": "installs:desc"},
            )
        except ServiceCallError as exc:
            # Workflows stay tools when the templates service is away.
            logger.warning("templates are not offered as MCP tools: %s", exc)
            return {}
        named: dict[str, dict[str, Any]] = {}
        for template in body.get("data", []) if isinstance(body, dict) else []:
            named.setdefault(tool_name(template), template)
        return named

    async def workflow_for(
        self,
        principal: Principal,
        template: dict[str, Any],
        parameters: dict[str, Any],
        runnable: dict[str, Workflow],
    ) -> str:
        """The id of the workflow made of ``template`` with ``parameters`` (made now if
        no runnable one exists). Raises ServiceCallError (a 422 names the bad parameter)."""
        name = workflow_name(template, parameters)
        for workflow in runnable.values():
            if workflow.name == name:
                return workflow.id
        made = await self.peers.request(
            "templates",
            "POST",
            f"/api/v1/templates/{template['id']}/instantiate",
            principal=principal,
            json={"parameters": parameters, "name": name},
            idempotency_key=f"mcp-{principal.subject}-{name}",
        )
        return str(made["id"])
