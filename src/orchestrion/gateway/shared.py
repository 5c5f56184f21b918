"""The admin API's changes, shared by every gateway replica through Redis.

What ``/admin`` changes at run time (instances added by hand, weights, draining, route
canaries) is written to three Redis hashes under the registry prefix, and a message on a pub/sub
channel tells every gateway to read them again:

```
<prefix>admin:instances   "<service> <url>"          -> {"url", "weight"}
<prefix>admin:overrides   "<service> <instance id>"  -> {"weight"?, "draining"?}
<prefix>admin:canaries    "<route prefix>"            -> {"weight"?, "enabled"?}
<prefix>admin:changes     (channel) a change was written
```

Each gateway applies the hashes on top of what its config file, ``--upstream`` and the
registry give it: the file stays the source at start, the shared changes follow. The
gateway that made a change applies it at once; the others within the pub/sub delay,
and in any case at their next full read (every ``resync`` seconds, for a message lost
across a reconnect). Instance ids are the same on every gateway (the registry's, or a
hash of the URL), so an override names the same instance everywhere.

Redis being unreachable keeps each gateway on what it last applied; an admin change
made meanwhile stays local to the gateway that took it (logged) until the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from orchestrion.gateway.balancer import Instance
from orchestrion.gateway.proxy import HttpUpstream

if TYPE_CHECKING:
    from orchestrion.gateway.app import Gateway

logger = logging.getLogger("orchestrion.gateway.shared")
_POLL_SECONDS = 5.0
_KEEPALIVE_SECONDS = 15.0


class SharedAdmin:
    """Writes this gateway's admin changes to Redis and applies everyone's."""

    def __init__(self, gateway: Gateway, url: str, *, prefix: str, resync: float = 5.0) -> None:
        self.gateway = gateway
        self.redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            socket_keepalive=True,
            # Reconnects are ours to make: each one reads the whole state again.
            retry=Retry(NoBackoff(), 0),
        )
        self.instances_key = f"{prefix}admin:instances"
        self.overrides_key = f"{prefix}admin:overrides"
        self.canaries_key = f"{prefix}admin:canaries"
        self.channel = f"{prefix}admin:changes"
        self.resync = resync
        self.applied = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    def start(self) -> None:
        """Listen for changes and apply them in the background."""
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="admin-changes-listen"),
            asyncio.create_task(self._apply_forever(), name="admin-changes-apply"),
        ]

    async def aclose(self) -> None:
        """Stop listening."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.redis.aclose()

    # Writing (the admin API of this gateway).

    async def add_instance(self, service: str, instance: Instance) -> None:
        """Share an instance added by hand."""
        value = json.dumps({"url": instance.url, "weight": instance.weight})
        await self._write(lambda p: p.hset(self.instances_key, f"{service} {instance.url}", value))

    async def remove_instance(self, service: str, instance: Instance) -> None:
        """Share the removal of an instance added by hand (and forget its overrides)."""

        def remove(pipe: Any) -> None:
            pipe.hdel(self.instances_key, f"{service} {instance.url}")
            pipe.hdel(self.overrides_key, f"{service} {instance.id}")

        await self._write(remove)

    async def override(self, service: str, instance: Instance) -> None:
        """Share an instance's weight (if pinned by the admin API) and draining."""
        value: dict[str, Any] = {"draining": instance.draining}
        if instance.pinned_weight:
            value["weight"] = instance.weight
        field = f"{service} {instance.id}"
        await self._write(lambda p: p.hset(self.overrides_key, field, json.dumps(value)))

    async def override_canary(self, prefix: str, override: dict[str, Any] | None) -> None:
        """Share a route canary's weight and ``enabled`` (None: back to the config file's)."""
        if override is None:
            await self._write(lambda p: p.hdel(self.canaries_key, prefix))
        else:
            value = json.dumps(override)
            await self._write(lambda p: p.hset(self.canaries_key, prefix, value))

    async def _write(self, change: Any) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                change(pipe)
                pipe.publish(self.channel, "changed")
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("admin change not shared with other gateways (Redis: %s)", exc)

    # Applying (every gateway).

    async def refresh(self) -> None:
        """Read the shared changes and apply them to this gateway."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.instances_key)
            pipe.hgetall(self.overrides_key)
            pipe.hgetall(self.canaries_key)
            added, overrides, canaries = await pipe.execute()
        self.apply(_decode(added), _decode(overrides), _decode(canaries))

    def apply(
        self,
        added: dict[str, Any],
        overrides: dict[str, Any],
        canaries: dict[str, Any] | None = None,
    ) -> None:
        """Make this gateway's hand-added instances and overrides those given."""
        gateway = self.gateway
        if canaries is not None:
            gateway.canaries.overrides = {
                prefix: _canary_override(value) for prefix, value in canaries.items()
            }
        wanted: dict[str, list[Instance]] = {}
        for field, value in sorted(added.items()):
            service, _, url = field.partition(" ")
            known = {i.url: i for i in gateway.admin_instances.get(service, [])}
            instance = known.get(url.rstrip("/"))
            if instance is None:
                instance = Instance(url=url, source="admin")
            instance.weight = int(value.get("weight", 1))
            instance.pinned_weight = True
            wanted.setdefault(service, []).append(instance)
        gateway.admin_instances = wanted
        gateway.sync_upstreams()
        for field, value in overrides.items():
            service, _, instance_id = field.partition(" ")
            upstream = gateway.upstreams.get(service)
            if not isinstance(upstream, HttpUpstream):
                continue
            pool = upstream.pool
            instance = pool.find(instance_id)
            if instance is None:
                continue  # not (yet) known here: applied once it appears
            if "weight" in value and (
                instance.weight != int(value["weight"]) or not instance.pinned_weight
            ):
                instance.weight = int(value["weight"])
                instance.pinned_weight = True
                pool.rebuild()
            instance.draining = bool(value.get("draining", False))
        self.applied += 1

    async def _listen_forever(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._wake.set()  # read once subscribed: changes made while not listening
                idle = 0.0
                while True:
                    message = await pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is None:
                        idle += _POLL_SECONDS
                        if idle >= _KEEPALIVE_SECONDS:
                            await pubsub.ping()  # a dead connection fails here, not never
                            idle = 0.0
                    elif message.get("type") == "message":
                        idle = 0.0
                        self._wake.set()
            except (RedisError, OSError) as exc:
                self._warn(exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 2.0)  # type: ignore[no-untyped-call]
            await asyncio.sleep(1.0)

    async def _apply_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync)
            self._wake.clear()
            try:
                await self.refresh()
                if self._failing:
                    self._failing = False
                    logger.info("admin changes are shared again")
            except (RedisError, OSError) as exc:
                self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            logger.warning("shared admin changes unreachable, keeping the last ones: %s", exc)


def _canary_override(value: dict[str, Any]) -> dict[str, Any]:
    """The well-formed parts of a shared canary override."""
    kept: dict[str, Any] = {}
    weight = value.get("weight")
    if isinstance(weight, int | float) and not isinstance(weight, bool) and 0 <= weight <= 100:
        kept["weight"] = float(weight)
    if isinstance(value.get("enabled"), bool):
        kept["enabled"] = value["enabled"]
    return kept


def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        field = key.decode() if isinstance(key, bytes) else str(key)
        try:
            body = json.loads(value)
        except ValueError:
            continue
        if isinstance(body, dict):
            decoded[field] = body
    return decoded
