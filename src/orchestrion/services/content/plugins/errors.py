"""Errors of WebAssembly plugins.

Exception tree::

    NotFound (404)
    └── PluginNotFound          no such plugin in the caller's tenant
    Conflict (409)
    └── PluginExists            the tenant already has this name and version
    PayloadTooLarge (413)
    └── ModuleTooLarge          over ``plugins.max_module_bytes``
    ValidationFailed (422)
    ├── InvalidUpload           a missing or malformed form field
    ├── InvalidModule           not WebAssembly, does not compile, needs WASI or other imports
    ├── UnknownFunction         the plugin exports no such function
    └── PluginCallFailed        timeout, memory, trap or the plugin's own error
        └── OutputTooLarge      over ``plugins.max_output_bytes``
"""

from __future__ import annotations

from orchestrion.kernel.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)


class PluginNotFound(NotFound):
    """No such plugin in the caller's tenant."""


class PluginExists(Conflict):
    """The tenant already has a plugin with this name and version."""


class ModuleTooLarge(PayloadTooLarge):
    """The uploaded module is larger than the platform accepts."""


class InvalidUpload(ValidationFailed):
    """A form field is missing or malformed."""


class InvalidModule(ValidationFailed):
    """The module cannot run here: not WebAssembly, does not compile, or imports too much."""

    title = "Invalid WebAssembly module"


class UnknownFunction(ValidationFailed):
    """The plugin does not export the function asked for."""


class PluginCallFailed(ValidationFailed):
    """The call passed its time limit or memory cap, trapped, or reported an error.

    ``detail`` names the cause: ``timeout``, ``memory``, ``trap: <message>`` or
    ``error: <message>`` (the plugin's own error).
    """

    title = "Plugin call failed"


class OutputTooLarge(PluginCallFailed):
    """The plugin wrote more output than the platform returns."""
