"""Calling plugins: input and output conventions, limits, failures, isolation, the cache."""

from __future__ import annotations

import asyncio
import json

import pytest
import wasmtime

from orchestrion.services.content.plugins.runtime import PluginRuntime
from tests.services.content.plugins.conftest import EXAMPLES, call, example_wasm, upload, wasm

BASE = "/api/v1/plugins"


async def test_echo_input_and_output_conventions(pclient, editor) -> None:
    plugin = await upload(pclient, editor, wasm("echo"), name="echo")
    pid = plugin["id"]
    # JSON input arrives as its JSON text; JSON output comes back parsed.
    value = {"a": [1, 2.5, None, True], "b": {"ü": "ünïcode"}}
    result = await call(pclient, editor, pid, "echo", input=value)
    assert result["output"] == value
    assert isinstance(result["duration_ms"], float)
    assert (await call(pclient, editor, pid, "echo", input=[1, 2]))["output"] == [1, 2]
    assert (await call(pclient, editor, pid, "echo", input=42))["output"] == 42
    # A string arrives as its bytes: "hello" is not JSON, so it comes back a string.
    assert (await call(pclient, editor, pid, "echo", input="hello"))["output"] == "hello"
    # ... and a string that is JSON text comes back parsed.
    assert (await call(pclient, editor, pid, "echo", input='{"x": 1}'))["output"] == {"x": 1}
    # No input: the plugin reads nothing and writes nothing.
    assert (await call(pclient, editor, pid, "echo"))["output"] == ""
    assert (await call(pclient, editor, pid, "echo", input=None))["output"] is None


async def test_json_writing_plugin(pclient, editor) -> None:
    plugin = await upload(pclient, editor, example_wasm("text"), name="text")
    assert plugin["functions"] == ["count_vowels", "upper"]
    counted = await call(pclient, editor, plugin["id"], "count_vowels", input="Hello, World!")
    assert counted["output"] == {"vowels": 3}
    upper = await call(pclient, editor, plugin["id"], "upper", input="shout")
    assert upper["output"] == "SHOUT"
    shouted = await call(pclient, editor, plugin["id"], "upper", input={"k": "v"})
    assert shouted["output"] == {"K": "V"}


async def test_failures_name_their_cause_and_the_service_serves_on(pclient, editor) -> None:
    hostile = await upload(pclient, editor, wasm("hostile"), name="hostile")
    echo = await upload(pclient, editor, wasm("echo"), name="echo")
    hid = hostile["id"]

    timeout = await call(pclient, editor, hid, "spin", expect=422)
    assert timeout["detail"] == "timeout"
    assert "500 ms" in timeout["errors"][0]["msg"]
    memory = await call(pclient, editor, hid, "grow", expect=422)
    assert memory["detail"] == "memory"
    trap = await call(pclient, editor, hid, "trap", expect=422)
    assert trap["detail"].startswith("trap: ")
    assert "boom" in trap["detail"]
    failed = await call(pclient, editor, hid, "fail", expect=422)
    assert failed["detail"] == "error: no vowels today"
    for problem in (timeout, memory, trap, failed):
        assert problem["status"] == 422
        assert problem["title"] == "Plugin call failed"

    unknown = await call(pclient, editor, hid, "helper", expect=422)
    assert "no function 'helper'" in unknown["detail"]
    missing = await call(pclient, editor, "0190a0a0-0000-7000-8000-000000000000", "x", expect=404)
    assert missing["status"] == 404

    # The same plugin and others still answer.
    assert (await call(pclient, editor, hid, "big"))["output"] == "\0" * 4096
    assert (await call(pclient, editor, echo["id"], "echo", input=[1]))["output"] == [1]
    assert (await pclient.get(BASE, headers=editor)).status_code == 200


async def test_a_spinning_plugin_does_not_block_other_requests(
    pclient, editor, runtime: PluginRuntime
) -> None:
    hostile = await upload(
        pclient, editor, wasm("hostile"), name="hostile", limits=json.dumps({"timeout_ms": 2000})
    )
    echo = await upload(pclient, editor, wasm("echo"), name="echo")
    spinning = asyncio.create_task(call(pclient, editor, hostile["id"], "spin", expect=422))
    while runtime.running == 0:  # until the loop runs in its thread
        assert not spinning.done(), spinning.result()
        await asyncio.sleep(0.005)
    # While it spins, the event loop answers other requests, plugin calls included.
    listed = await pclient.get(BASE, headers=editor)
    assert listed.status_code == 200
    echoed = await call(pclient, editor, echo["id"], "echo", input="still here")
    assert echoed["output"] == "still here"
    assert not spinning.done()
    assert (await spinning)["detail"] == "timeout"


async def test_output_over_the_limit_is_422(pclient, editor, runtime: PluginRuntime) -> None:
    hostile = await upload(pclient, editor, wasm("hostile"), name="hostile")
    runtime.settings = runtime.settings.model_copy(update={"max_output_bytes": 1024})
    problem = await call(pclient, editor, hostile["id"], "big", expect=422)
    assert "4096 bytes" in problem["detail"]
    assert "max_output_bytes" in problem["detail"]


async def test_limits_are_capped_by_the_platform(pclient, editor, runtime: PluginRuntime) -> None:
    greedy = await upload(
        pclient,
        editor,
        wasm("hostile"),
        name="greedy",
        limits=json.dumps({"timeout_ms": 999_999, "max_memory_pages": 65536}),
    )
    assert greedy["limits"] == {"timeout_ms": 2000, "max_memory_pages": 64}
    modest = await upload(
        pclient,
        editor,
        wasm("hostile"),
        name="modest",
        limits=json.dumps({"timeout_ms": 50, "max_memory_pages": 8}),
    )
    assert modest["limits"] == {"timeout_ms": 50, "max_memory_pages": 8}
    problem = await call(pclient, editor, modest["id"], "spin", expect=422)
    assert problem["errors"][0]["msg"] == "ran past its 50 ms limit"
    problem = await call(pclient, editor, modest["id"], "grow", expect=422)
    assert problem["errors"][0]["msg"] == "needed more than 8 pages of 64 KiB"


async def test_a_module_whose_initial_memory_is_over_its_cap_is_refused(pclient, editor) -> None:
    wat = '(module (memory (export "memory") 32) (func (export "f") (result i32) (i32.const 0)))'
    module = bytes(wasmtime.wat2wasm(wat))
    problem = await upload(
        pclient, editor, module, limits=json.dumps({"max_memory_pages": 4}), expect=422
    )
    assert "initial memory" in problem["detail"]
    await upload(pclient, editor, module)


async def test_calls_reuse_the_compiled_module(
    pclient, editor, runtime: PluginRuntime, plugin_settings, plugin_app
) -> None:
    plugin = await upload(pclient, editor, wasm("echo"), name="echo")
    for n in range(3):
        assert (await call(pclient, editor, plugin["id"], "echo", input=n))["output"] == n
    assert runtime.compilations == 0  # the upload compiled it once, for every call
    # A fresh process (a new runtime) compiles on its first call only.
    fresh = PluginRuntime(plugin_settings.plugins)
    plugin_app.state.plugin_runtime = fresh
    try:
        for n in range(3):
            assert (await call(pclient, editor, plugin["id"], "echo", input=n))["output"] == n
        assert fresh.compilations == 1
    finally:
        fresh.close()


@pytest.mark.parametrize("function", ["trap", "spin"])
async def test_a_failed_call_leaves_no_state_behind(pclient, editor, function) -> None:
    hostile = await upload(
        pclient, editor, wasm("hostile"), name="h", limits=json.dumps({"timeout_ms": 100})
    )
    await call(pclient, editor, hostile["id"], function, expect=422)
    assert (await call(pclient, editor, hostile["id"], "big"))["output"] == "\0" * 4096


async def test_the_assemblyscript_example_built_with_the_extism_pdk(pclient, editor) -> None:
    # Built by `npm run build` in examples/plugins/assemblyscript (@extism/as-pdk); the
    # binary is committed so this test needs no npm.
    module = (EXAMPLES / "assemblyscript" / "build" / "text.wasm").read_bytes()
    plugin = await upload(pclient, editor, module, name="text-as")
    assert plugin["functions"] == ["count_vowels", "upper"]  # not `myAbort` (parameters)
    counted = await call(pclient, editor, plugin["id"], "count_vowels", input="Hello, World!")
    assert counted["output"] == {"vowels": 3}
    assert (await call(pclient, editor, plugin["id"], "upper", input={"k": "v"}))["output"] == {
        "K": "V"
    }
