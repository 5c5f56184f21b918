"""The sandbox: Extism plugins compiled once, run off the event loop under limits.

What a plugin may do is what Extism's kernel gives it and nothing more: no WASI
(``wasi=False``, so no files, clocks, sockets, environment or stdio), no host HTTP
(no ``allowed_hosts``), no host functions (``functions=[]``, so functions registered
elsewhere in the process are not exposed). A module importing anything beyond Extism's
own ``extism:host/env`` does not instantiate, and is refused at upload.

Every call gets a fresh instance (no state leaks from one call to the next, nor after a
trap) of a module compiled once per ``(sha256, limits)``: Extism bakes the time limit and
memory cap into the compiled plugin, so they are part of the cache key. Instances run in
a bounded thread pool (``plugins.concurrency``): Extism's calls release the GIL, so a
plugin spinning until its time limit never stalls the event loop, and at most that many
run at once (further calls queue).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import extism
import wasmtime
from extism.extism import CompiledPlugin

from orchestrion.services.content.plugins.errors import (
    InvalidModule,
    OutputTooLarge,
    PluginCallFailed,
)
from orchestrion.settings import PluginSettings

WASM_MAGIC = b"\0asm"
#: Compiled modules kept per process; each holds machine code, so keep the number modest.
CACHE_SIZE = 32
_TRAP = "error while executing"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one call of a plugin may use."""

    timeout_ms: int
    max_memory_pages: int

    def as_dict(self) -> dict[str, int]:
        """The JSON form, as stored and answered."""
        return {"timeout_ms": self.timeout_ms, "max_memory_pages": self.max_memory_pages}


@dataclass(frozen=True, slots=True)
class CallResult:
    """What a successful call returned."""

    output: bytes
    duration_ms: float


def cap_limits(asked: Mapping[str, Any] | None, settings: PluginSettings) -> Limits:
    """A plugin's own limits, each lowered to the platform's maximum.

    A plugin asking for more than the maximum gets the maximum rather than a refusal:
    the platform's maxima may change, and a plugin stored under looser ones keeps working.
    Without its own time limit a plugin gets ``plugins.timeout_ms``; without its own
    memory cap, ``plugins.max_memory_pages``.
    """
    asked = asked or {}
    timeout = asked.get("timeout_ms") or min(settings.timeout_ms, settings.max_timeout_ms)
    pages = asked.get("max_memory_pages") or settings.max_memory_pages
    return Limits(
        timeout_ms=min(int(timeout), settings.max_timeout_ms),
        max_memory_pages=min(int(pages), settings.max_memory_pages),
    )


def encode_input(value: Any) -> bytes:
    """What a plugin reads as input: a string as its UTF-8 bytes, anything else as JSON text."""
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode_output(data: bytes) -> Any:
    """A plugin's output: parsed when it is JSON, else text (invalid UTF-8 replaced)."""
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        return data.decode("utf-8", errors="replace")


def exported_functions(module: wasmtime.Module) -> list[str]:
    """The functions a caller may name: exports Extism can call (no parameters, at most
    one ``i32`` result), minus toolchain entry points (names starting with ``_``)."""
    names = []
    for export in module.exports:
        kind = export.type
        if not isinstance(kind, wasmtime.FuncType) or export.name.startswith("_"):
            continue
        results = [str(t) for t in kind.results]
        if not kind.params and results in ([], ["i32"]):
            names.append(export.name)
    return sorted(names)


def initial_pages(module: wasmtime.Module) -> int:
    """The pages of 64 KiB the module's exported memories start with (Extism's PDKs
    export theirs as ``memory``), so a module that cannot start under its cap is caught
    at upload rather than on every call."""
    return sum(
        export.type.limits.min
        for export in module.exports
        if isinstance(export.type, wasmtime.MemoryType)
    )


def _one_line(message: str, limit: int = 300) -> str:
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_failure(error: Exception, limits: Limits) -> PluginCallFailed:
    """The 422 an Extism error stands for, its ``detail`` naming the cause."""
    message = str(error)
    if message == "timeout":
        return PluginCallFailed(
            "timeout",
            errors=[{"loc": ["function"], "msg": f"ran past its {limits.timeout_ms} ms limit"}],
        )
    if message == "oom":
        return PluginCallFailed(
            "memory",
            errors=[
                {
                    "loc": ["function"],
                    "msg": f"needed more than {limits.max_memory_pages} pages of 64 KiB",
                }
            ],
        )
    if message.startswith(_TRAP) or "wasm trap" in message:
        return PluginCallFailed(f"trap: {_one_line(message)}")
    if message.startswith("Error code: "):
        code = message.removeprefix("Error code: ")
        return PluginCallFailed(f"error: the plugin returned {code}")
    return PluginCallFailed(f"error: {_one_line(message)}")


def _manifest(module: bytes, limits: Limits) -> dict[str, Any]:
    return {
        "wasm": [{"data": module}],
        "memory": {"max_pages": limits.max_memory_pages},
        "timeout_ms": limits.timeout_ms,
        "allowed_hosts": [],
        "allowed_paths": {},
    }


class PluginRuntime:
    """Compiles, caches and runs plugins for one process; :meth:`close` at shutdown."""

    def __init__(self, settings: PluginSettings, *, cache_size: int = CACHE_SIZE) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="orchestrion-plugin"
        )
        self._cache: OrderedDict[tuple[str, Limits], CompiledPlugin] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._engine = wasmtime.Engine()
        #: Modules compiled by calls (cache misses), for figures and tests.
        self.compilations = 0
        #: Calls running right now (queued ones not counted).
        self.running = 0

    def limits(self, asked: Mapping[str, Any] | None) -> Limits:
        """``asked`` capped by this runtime's settings."""
        return cap_limits(asked, self.settings)

    async def _offload(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def inspect(self, module: bytes, limits: Limits) -> list[str]:
        """The functions ``module`` exports, once it is known to run here; else 422."""
        result: list[str] = await self._offload(self._inspect, module, limits)
        return result

    def _inspect(self, module: bytes, limits: Limits) -> list[str]:
        if not module.startswith(WASM_MAGIC):
            raise InvalidModule("the module is not a WebAssembly binary (no \\0asm header)")
        try:
            compiled_module = wasmtime.Module(self._engine, module)
        except wasmtime.WasmtimeError as exc:
            raise InvalidModule(f"the module does not compile: {_one_line(str(exc))}") from exc
        functions = exported_functions(compiled_module)
        if not functions:
            raise InvalidModule("the module exports no function a plugin call can name")
        needed = initial_pages(compiled_module)
        if needed > limits.max_memory_pages:
            raise InvalidModule(
                f"the module cannot run here: its initial memory ({needed} pages) is over "
                f"its cap of {limits.max_memory_pages} pages"
            )
        try:
            compiled = CompiledPlugin(_manifest(module, limits), wasi=False, functions=[])
            # Instantiating checks the imports (WASI, host functions) and the initial
            # memory against the cap, so a module that can never run is refused now.
            with extism.Plugin(compiled, functions=[]):
                pass
        except extism.Error as exc:
            message = str(exc)
            if message == "oom":
                message = f"its initial memory is over its cap of {limits.max_memory_pages} pages"
            raise InvalidModule(f"the module cannot run here: {_one_line(message)}") from exc
        self._remember((hashlib.sha256(module).hexdigest(), limits), compiled)
        return functions

    def is_cached(self, sha256: str, limits: Limits) -> bool:
        """Whether a call with these limits can skip loading and compiling the module."""
        with self._lock:
            return (sha256, limits) in self._cache

    def _remember(self, key: tuple[str, Limits], compiled: CompiledPlugin) -> None:
        with self._lock:
            self._cache[key] = compiled
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _compiled(self, key: tuple[str, Limits], module: bytes | None) -> CompiledPlugin:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        if module is None:
            raise LookupError("module evicted from the cache between check and call")
        compiled = CompiledPlugin(_manifest(module, key[1]), wasi=False, functions=[])
        self.compilations += 1
        self._remember(key, compiled)
        return compiled

    async def call(
        self,
        *,
        sha256: str,
        limits: Limits,
        function: str,
        data: bytes,
        load_module: Callable[[], Awaitable[bytes]],
    ) -> CallResult:
        """Run ``function`` on ``data``; 422 (:class:`PluginCallFailed`) when it fails.

        ``load_module`` is awaited only when the compiled module is not cached.
        """
        module = None if self.is_cached(sha256, limits) else await load_module()
        try:
            result: CallResult = await self._offload(
                self._call, (sha256, limits), module, function, data
            )
        except LookupError:
            # Evicted by other calls meanwhile: load it and go again.
            result = await self._offload(
                self._call, (sha256, limits), await load_module(), function, data
            )
        return result

    def _call(
        self, key: tuple[str, Limits], module: bytes | None, function: str, data: bytes
    ) -> CallResult:
        compiled = self._compiled(key, module)
        with self._lock:
            self.running += 1
        started = time.perf_counter()
        try:
            with extism.Plugin(compiled, functions=[]) as plugin:
                output = bytes(plugin.call(function, data))
        except extism.Error as exc:
            raise call_failure(exc, key[1]) from exc
        finally:
            with self._lock:
                self.running -= 1
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if len(output) > self.settings.max_output_bytes:
            raise OutputTooLarge(
                f"output is {len(output)} bytes, over the limit of "
                f"{self.settings.max_output_bytes} (plugins.max_output_bytes)"
            )
        return CallResult(output=output, duration_ms=duration_ms)

    def close(self) -> None:
        """Stop taking calls; running ones end at their time limit at the latest."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._cache.clear()
