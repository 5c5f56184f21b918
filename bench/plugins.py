"""WebAssembly plugins: what the compiled-module cache saves on each call.

    .venv/bin/python -m bench.plugins [--calls 200] [--functions 2000]

Two modules: the `text` example (``examples/plugins/text.wat``, tiny) and a generated
one with ``--functions`` small functions (the size of a real PDK build, where compiling
dominates). For each: compiling (``CompiledPlugin``), a call that compiles first (what
every call would cost without the cache), and a call through :class:`PluginRuntime` with
the module cached (a fresh instance per call); p50 over ``--calls`` in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
from pathlib import Path

import extism
import wasmtime
from extism.extism import CompiledPlugin

from orchestrion.services.content.plugins.runtime import PluginRuntime
from orchestrion.settings import PluginSettings

EXAMPLE = Path(__file__).parents[1] / "examples" / "plugins" / "text.wat"


def generated(functions: int) -> bytes:
    """A module of ``functions`` arithmetic functions plus the example's ``upper``."""
    body = "".join(
        f'(func (export "f{i}") (result i32) (i32.add (i32.mul (i32.const {i}) '
        f"(i32.const 3)) (i32.const 7)))\n"
        for i in range(functions)
    )
    text = EXAMPLE.read_text().rstrip().removesuffix(")") + body + ")"
    return bytes(wasmtime.wat2wasm(text))


def p50_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


async def measure(name: str, module: bytes, calls: int) -> None:
    runtime = PluginRuntime(PluginSettings())
    limits = runtime.limits(None)
    manifest = {"wasm": [{"data": module}], "timeout_ms": limits.timeout_ms}
    compile_times, uncached = [], []
    for _ in range(max(3, calls // 20)):
        started = time.perf_counter()
        compiled = CompiledPlugin(manifest, wasi=False, functions=[])
        compile_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        with extism.Plugin(CompiledPlugin(manifest, functions=[]), functions=[]) as plugin:
            plugin.call("upper", b'"hello"')
        uncached.append(time.perf_counter() - started)
    del compiled
    await runtime.inspect(module, limits)  # the upload compiles and caches it
    sha = hashlib.sha256(module).hexdigest()

    async def load() -> bytes:
        return module

    cached = []
    for _ in range(calls):
        started = time.perf_counter()
        await runtime.call(sha256=sha, limits=limits, function="upper", data=b'"hello"',
                           load_module=load)  # fmt: skip
        cached.append(time.perf_counter() - started)
    runtime.close()
    print(
        f"{name:<22} {len(module):>9,} B  compile {p50_ms(compile_times):>8} ms  "
        f"call uncached {p50_ms(uncached):>8} ms  call cached {p50_ms(cached):>7} ms  "
        f"(x{statistics.median(uncached) / statistics.median(cached):.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--functions", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(measure("text example", bytes(wasmtime.wat2wasm(EXAMPLE.read_text())), args.calls))
    asyncio.run(measure(f"{args.functions} functions", generated(args.functions), args.calls))


if __name__ == "__main__":
    main()
