"""At shutdown a part of the gateway that never closes is named in the log and left
behind, so the process still stops."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orchestrion.gateway import app as gateway_app


async def test_a_part_that_hangs_at_shutdown_is_named_and_left(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gateway_app, "_CLOSE_SECONDS", 0.05)
    never = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="orchestrion.gateway"):
        await gateway_app._closing("registry watcher", never.wait())
        await gateway_app._closing("composer", asyncio.sleep(0))
    assert [r.getMessage() for r in caplog.records] == [
        "shutdown: registry watcher did not close within 0.05s; left behind"
    ]
