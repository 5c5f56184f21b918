"""The MCP client pool against the reference MCP server, over stdio, streamable HTTP and SSE."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrion.engine.mcp.pool import McpPool, McpTimeout, McpUnavailable
from orchestrion.kernel.mcp_config import McpServerConfig
from tests.fixtures.mcp_peer import stdio_command


@pytest.fixture
async def pool() -> AsyncIterator[McpPool]:
    mcp_pool = McpPool(connect_timeout=20)
    yield mcp_pool
    await mcp_pool.aclose()


def _marked(script: Path) -> tuple[McpServerConfig, str]:
    """A stdio config whose process can be found by a marker argument (the server ignores it)."""
    marker = f"orn-test-{uuid.uuid4().hex}"
    return McpServerConfig(command=[*stdio_command(script), marker]), marker


def _pids(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _text(result: object) -> str:
    return "".join(getattr(block, "text", "") for block in getattr(result, "content", []))


async def test_stdio_calls_share_one_session(pool: McpPool, everything: Path) -> None:
    config, marker = _marked(everything)
    echoed = await pool.call_tool(config, "echo", {"message": "hi"}, seconds=10)
    assert _text(echoed) == "Echo: hi"
    assert not echoed.is_error
    sums = await asyncio.gather(
        *(pool.call_tool(config, "get-sum", {"a": i, "b": 1}, seconds=10) for i in range(5))
    )
    assert [_text(s) for s in sums] == [f"The sum of {i} and 1 is {i + 1}." for i in range(5)]
    assert len(pool) == 1
    assert len(_pids(marker)) == 1
    tools = {tool.name for tool in await pool.list_tools(config, seconds=10)}
    assert {"echo", "get-sum", "get-structured-content"} <= tools


async def test_close_stops_the_spawned_server(pool: McpPool, everything: Path) -> None:
    config, marker = _marked(everything)
    await pool.call_tool(config, "echo", {"message": "x"}, seconds=10)
    assert _pids(marker)
    await pool.aclose()
    assert _pids(marker) == []
    with pytest.raises(McpUnavailable):
        await pool.call_tool(config, "echo", {"message": "x"}, seconds=10)


async def test_a_dead_server_is_respawned_once(pool: McpPool, everything: Path) -> None:
    config, marker = _marked(everything)
    await pool.call_tool(config, "echo", {"message": "before"}, seconds=10)
    [pid] = _pids(marker)
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if pid not in _pids(marker):
            break
        await asyncio.sleep(0.05)
    after = await pool.call_tool(config, "echo", {"message": "after"}, seconds=10)
    assert _text(after) == "Echo: after"
    assert len(_pids(marker)) == 1
    assert _pids(marker) != [pid]


async def test_structured_content_and_tool_errors(pool: McpPool, everything: Path) -> None:
    config = McpServerConfig(command=stdio_command(everything))
    weather = await pool.call_tool(
        config, "get-structured-content", {"location": "Chicago"}, seconds=10
    )
    assert set(weather.structured_content or {}) == {"temperature", "conditions", "humidity"}
    bad = await pool.call_tool(config, "get-sum", {"a": "one"}, seconds=10)
    assert bad.is_error
    assert "Invalid" in _text(bad)
    missing = await pool.call_tool(config, "no-such-tool", {}, seconds=10)
    assert missing.is_error
    assert "not found" in _text(missing)


async def test_the_server_gets_only_the_configured_environment(
    pool: McpPool, everything: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRION_PROBE_SECRET", "do-not-leak")
    config = McpServerConfig(command=stdio_command(everything), env={"GREETING": "hello"})
    result = await pool.call_tool(config, "get-env", {}, seconds=10)
    env = json.loads(_text(result))
    assert env["GREETING"] == "hello"
    assert "ORCHESTRION_PROBE_SECRET" not in env


async def test_a_slow_tool_times_out(pool: McpPool, everything: Path) -> None:
    config = McpServerConfig(command=stdio_command(everything))
    with pytest.raises(McpTimeout, match=r"within 0\.5s"):
        await pool.call_tool(
            config, "trigger-long-running-operation", {"duration": 5, "steps": 1}, seconds=0.5
        )
    # The session survives a slow answer: the next call is served.
    assert _text(await pool.call_tool(config, "echo", {"message": "ok"}, seconds=10)) == "Echo: ok"


async def test_unreachable_servers_fail_cleanly(pool: McpPool, tmp_path: Path) -> None:
    missing = McpServerConfig(command=[str(tmp_path / "no-such-program")])
    with pytest.raises(McpUnavailable, match="cannot connect"):
        await pool.call_tool(missing, "echo", {}, seconds=5)
    silent = McpServerConfig(command=["node", "-e", "setTimeout(() => {}, 60000)"])
    quick = McpPool(connect_timeout=1)
    try:
        began = time.monotonic()
        with pytest.raises(McpUnavailable, match="handshake"):
            await quick.call_tool(silent, "echo", {}, seconds=5)
        # The attempt is given up at its timeout: not held until the connection's close
        # deadline (10 s), which a connection still in its handshake never reaches. The
        # SDK gives the process 2 s to exit; the rest is room for a loaded machine.
        assert time.monotonic() - began < 8
    finally:
        await quick.aclose()
    closed_port = McpServerConfig(url="http://127.0.0.1:9/mcp")
    with pytest.raises(McpUnavailable):
        await pool.call_tool(closed_port, "echo", {}, seconds=5)


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_http_transports(
    pool: McpPool, transport: str, request: pytest.FixtureRequest
) -> None:
    if transport == "sse":
        config = McpServerConfig(url=request.getfixturevalue("everything_sse") + "/sse")
    else:
        config = McpServerConfig(url=request.getfixturevalue("everything_http") + "/mcp")
    assert config.kind == transport
    result = await pool.call_tool(config, "get-sum", {"a": 2, "b": 3}, seconds=10)
    assert _text(result) == "The sum of 2 and 3 is 5."
    again = await pool.call_tool(config, "echo", {"message": transport}, seconds=10)
    assert _text(again) == f"Echo: {transport}"
    assert len(pool) == 1


def test_configs_need_exactly_one_way_in() -> None:
    with pytest.raises(ValueError, match="either"):
        McpServerConfig()
    with pytest.raises(ValueError, match="either"):
        McpServerConfig(command=["x"], url="http://h/mcp")
    with pytest.raises(ValueError, match="http"):
        McpServerConfig(url="file:///etc/passwd")
    with pytest.raises(ValueError, match="headers"):
        McpServerConfig(command=["x"], headers={"a": "b"})
    assert McpServerConfig(url="http://h/x/sse/").kind == "sse"
    assert McpServerConfig(url="http://h/mcp").key() == McpServerConfig(url="http://h/mcp").key()
