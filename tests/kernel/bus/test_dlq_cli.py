"""``orchestrion events dlq list|replay`` against Redis: a poison message is dead-lettered,
listed from the shell, and handled after the fix once replayed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from orchestrion.kernel.bus import Backoff, BusUnavailable, CloudEvent, open_bus
from tests.fixtures.databases import server_missing
from tests.fixtures.processes import run_command
from tests.kernel.bus.conftest import URLS, Collector, eventually


async def test_poison_message_listed_and_replayed_from_the_cli(tmp_path: Path) -> None:
    url = URLS["redis"]
    bus = open_bus(url)
    try:
        await bus.start()
    except (BusUnavailable, OSError) as exc:
        server_missing(f"redis at {url}", exc)
    topic, group = f"t{uuid.uuid4().hex[:10]}.cli", f"g{uuid.uuid4().hex[:10]}"
    fixed = False

    async def handler(event: CloudEvent) -> None:
        if not fixed:
            raise ValueError("cannot handle this yet")

    done = Collector(handler)
    try:
        await bus.subscribe(topic, group, done, max_attempts=2, backoff=Backoff(initial=0.01))
        poison = CloudEvent(source="tests/cli", type="test.poison", data={"bad": True})
        await bus.publish(topic, poison)
        await eventually(lambda: bus.dlq_list(topic, group))

        env = {"ORCHESTRION_BUS__URL": url}
        listed = await asyncio.to_thread(
            run_command, tmp_path, "events", "dlq", "list", "--topic", topic, **env
        )
        assert listed.returncode == 0, listed.stderr
        assert poison.id in listed.stdout
        assert "cannot handle this yet" in listed.stdout

        fixed = True
        replayed = await asyncio.to_thread(
            run_command,
            tmp_path,
            "events",
            "dlq",
            "replay",
            "--topic",
            topic,
            "--group",
            group,
            **env,
        )
        assert replayed.returncode == 0, replayed.stderr
        assert "1 event(s) replayed" in replayed.stdout
        await done.wait_for_ids(poison.id)
        assert await bus.dlq_list(topic, group) == []
    finally:
        for subscription in bus.subscriptions:
            await subscription.stop(grace=0)
        await bus.delete(topic)
        await bus.close(grace=0)
