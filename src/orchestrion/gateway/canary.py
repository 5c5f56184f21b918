"""Canary routing: which upstream version answers one request of a route with a canary.

In this order, a request goes to the canary when

1. it carries the canary's header with its value (``X-Canary: 1``);
2. the canary's feature flag is on for the caller: the gateway asks the flags service
   ``GET /api/v1/flags/{key}/evaluate`` as the caller (the signed identity it forwards
   on every request), keeps the answer ``ORCHESTRION_GATEWAY__CANARY_FLAG_CACHE_SECONDS``
   (5 s) per (subject, key), and takes an unreachable flags service, a missing flag or an
   anonymous caller as "off";
3. the caller's bucket is below the weight: ``sha256("<canary upstream>:<subject>")``
   reduced to 0..9999 against ``weight * 100``, the subject being the authenticated
   principal's, else the client address. One caller stays on one version, on every route
   sharing that canary, and raising the weight only adds callers.

Otherwise, and whenever the canary is disabled, the route's own service answers.

A flag's cached answers are dropped as soon as ``flags.changed`` names it on the bus
(:meth:`Canaries.listen`, joined in the gateway's lifespan), so a kill switch sends
callers back at once instead of within the cache's lifetime. An answer asked for before
the change and arriving after it is not kept.

The admin API overrides a canary's ``weight`` and ``enabled`` at run time (rollback):
:class:`Canaries` keeps those overrides by route prefix, on top of the config file's
canaries, until the admin API forgets them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from starlette.datastructures import Headers
from starlette.types import Scope

from orchestrion.gateway.forwarded import CLIENT_IP
from orchestrion.gateway.routes import Canary, Route
from orchestrion.kernel.auth.identity import IDENTITY_HEADER
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus import Bus, CloudEvent, MemoryDeduplicator, Subscription

if TYPE_CHECKING:
    from orchestrion.gateway.app import Gateway

logger = logging.getLogger("orchestrion.gateway.canary")

#: How long a flag's answer for one caller is reused (the setting's default).
FLAG_CACHE_SECONDS = 5.0
#: The flags service's change notices (see docs/flags.md, "Changes on the bus"); named
#: here because the gateway knows services only by their public contracts.
FLAGS_TOPIC = "flags.changed"
#: How long the gateway waits for the flags service before taking the flag as off.
FLAG_TIMEOUT_SECONDS = 2.0
_FLAG_CACHE_SIZE = 10_000
UPSTREAM_HEADER = "x-orchestrion-upstream"
_BUCKETS = 10_000


def bucket(upstream: str, subject: str) -> int:
    """The caller's sticky bucket (0..9999) for the canary ``upstream``."""
    digest = hashlib.sha256(f"{upstream}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


def in_weight(canary: Canary, subject: str) -> bool:
    """Whether ``subject`` is among the canary's ``weight`` percent."""
    return bucket(canary.upstream, subject) < round(canary.weight * _BUCKETS / 100)


class Canaries:
    """Picks the upstream of each request of a route with a canary; holds the admin
    API's overrides and the flags' recent answers."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        #: Route prefix -> {"weight"?, "enabled"?} set through the admin API.
        self.overrides: dict[str, dict[str, Any]] = {}
        #: How long one caller's answer of a flag is reused.
        self.flag_cache_seconds = gateway.settings.gateway.canary_flag_cache_seconds
        self._flags: dict[tuple[str, str], tuple[bool, float]] = {}
        # Per flag key, how many times its answers were dropped: an answer asked for
        # before a drop is not cached after it.
        self._generations: dict[str, int] = {}
        self._subscription: Subscription | None = None

    def effective(self, route: Route) -> Canary | None:
        """The route's canary with the admin API's overrides applied."""
        canary = route.canary
        if canary is None:
            return None
        override = self.overrides.get(route.prefix)
        if not override:
            return canary
        changes: dict[str, Any] = {}
        if "weight" in override:
            changes["weight"] = float(override["weight"])
        if "enabled" in override:
            changes["enabled"] = bool(override["enabled"])
        return dataclasses.replace(canary, **changes)

    async def choose(self, route: Route, scope: Scope, principal: Principal | None) -> str:
        """The upstream that answers this request of ``route``."""
        canary = self.effective(route)
        if canary is None or not canary.enabled:
            return route.service
        if canary.header is not None:
            name, value = canary.header
            if Headers(scope=scope).get(name) == value:
                return canary.upstream
        if (
            canary.flag is not None
            and principal is not None
            and await self.flag_enabled(canary.flag, principal)
        ):
            return canary.upstream
        if canary.weight > 0:
            subject = principal.subject if principal is not None else str(scope.get(CLIENT_IP))
            if in_weight(canary, subject):
                return canary.upstream
        return route.service

    async def flag_enabled(self, key: str, principal: Principal) -> bool:
        """Whether flag ``key`` is on for ``principal`` (asked as the principal, cached)."""
        now = time.monotonic()
        cached = self._flags.get((principal.subject, key))
        if cached is not None and cached[1] > now:
            return cached[0]
        generation = self._generations.get(key, 0)
        enabled = await self._evaluate(key, principal)
        if self._generations.get(key, 0) != generation:
            return enabled  # the flag changed meanwhile: answer, but do not keep it
        if len(self._flags) >= _FLAG_CACHE_SIZE:
            self._flags.clear()
        self._flags[(principal.subject, key)] = (enabled, now + self.flag_cache_seconds)
        return enabled

    def invalidate(self, key: str | None = None) -> None:
        """Forget every caller's answer of flag ``key`` (of every flag: None)."""
        if key is None:
            self._flags.clear()
            for name in self._generations:
                self._generations[name] += 1
            return
        self._generations[key] = self._generations.get(key, 0) + 1
        for cached in [k for k in self._flags if k[1] == key]:
            self._flags.pop(cached, None)

    async def listen(self, bus: Bus) -> Subscription:
        """Drop a flag's answers on each ``flags.changed`` naming it, from now on.

        The group is this process's own: every gateway replica must see every change.
        """
        group = f"gateway-canary-{uuid.uuid4().hex}"
        self._subscription = await bus.subscribe(
            FLAGS_TOPIC,
            group,
            self._on_change,
            max_attempts=1,
            dedup=MemoryDeduplicator(max_entries=10_000, ttl=600.0),
        )
        return self._subscription

    async def aclose(self) -> None:
        """Stop listening to the bus."""
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None

    async def _on_change(self, event: CloudEvent) -> None:
        data = event.data if isinstance(event.data, Mapping) else {}
        key = data.get("key")
        self.invalidate(key if isinstance(key, str) else None)

    async def _evaluate(self, key: str, principal: Principal) -> bool:
        flags = self.gateway.upstreams.get("flags")
        if flags is None:
            logger.warning("canary flag %r taken as off: no flags service", key)
            return False
        try:
            response = await flags.client.get(
                f"/api/v1/flags/{key}/evaluate",
                headers={IDENTITY_HEADER: self.gateway.identity(principal).decode()},
                timeout=FLAG_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            logger.warning(
                "canary flag %r taken as off: flags service unreachable (%s)",
                key, type(exc).__name__,
            )  # fmt: skip
            return False
        if response.status_code != 200:
            logger.warning(
                "canary flag %r taken as off: the flags service answered %d",
                key, response.status_code,
            )  # fmt: skip
            return False
        try:
            return response.json().get("enabled") is True
        except (ValueError, AttributeError):
            logger.warning("canary flag %r taken as off: the answer is not a flag", key)
            return False
