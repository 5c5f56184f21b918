"""Request and response bodies of the plugin routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$"
DEFAULT_VERSION = "1.0.0"


class PluginLimitsRequest(BaseModel):
    """Limits a plugin asks for; each is lowered to the platform's maximum if above it."""

    model_config = ConfigDict(extra="forbid")

    timeout_ms: int | None = Field(default=None, ge=1, description="Time limit of one call.")
    max_memory_pages: int | None = Field(
        default=None, ge=1, le=65536, description="Memory cap of one call, in 64 KiB pages."
    )


class PluginLimits(BaseModel):
    """The limits every call of the plugin runs under (after the platform's maxima)."""

    timeout_ms: int
    max_memory_pages: int


class PluginCreate(BaseModel):
    """The form fields of an upload besides the module (checked before compiling it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    version: str = Field(
        default=DEFAULT_VERSION, min_length=1, max_length=64, pattern=VERSION_PATTERN
    )
    description: str = Field(default="", max_length=2000)
    limits: PluginLimitsRequest = Field(default_factory=PluginLimitsRequest)


class Plugin(BaseModel):
    """An uploaded plugin."""

    id: str
    name: str
    version: str
    description: str
    functions: list[str] = Field(description="Exported functions a call may name.")
    sha256: str = Field(description="SHA-256 of the module, hex.")
    size_bytes: int
    limits: PluginLimits
    created_at: datetime


class PluginCall(BaseModel):
    """One call: the function to run and its input."""

    model_config = ConfigDict(extra="forbid")

    function: str = Field(min_length=1, max_length=200)
    input: Any = Field(
        default=None,
        description="Sent to the plugin as its JSON text; a string as its UTF-8 bytes. "
        "Left out, the plugin reads empty input.",
    )


class PluginCallResult(BaseModel):
    """What the plugin wrote, and how long the call ran."""

    output: Any = Field(description="Parsed JSON when the plugin wrote JSON, else a string.")
    duration_ms: float
