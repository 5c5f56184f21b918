"""Pieces the built-in step types' ``with`` schemas share, and deadline helpers.

The schemas describe ``with`` as written, so every typed field also accepts a ``{{ }}``
string (:func:`~orchestrion.engine.registry.expr_or`); the value is checked again by the
step once evaluated. Fields are closed (``additionalProperties: false``) so a typo such
as ``heders`` is a 422, not ignored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrion.engine.registry import expr_or
from orchestrion.kernel.ids import utcnow

STRING: dict[str, Any] = {"type": "string"}
NAME: dict[str, Any] = {"type": "string", "minLength": 1}
TIMEOUT: dict[str, Any] = expr_or({"type": "number", "exclusiveMinimum": 0})


def closed(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """An object schema with exactly these properties."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def deadline(seconds: Any) -> datetime | None:
    """``seconds`` from now, or None when unset."""
    return None if seconds in (None, "") else utcnow() + timedelta(seconds=float(seconds))
