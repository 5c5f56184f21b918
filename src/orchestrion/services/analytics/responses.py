"""The error statuses routes declare, each a problem+json document (the kernel's)."""

from __future__ import annotations

from orchestrion.kernel.http.openapi import problems

__all__ = ["problems"]
