"""What the rate limit and the response cache share: the Redis client, the fail-open
guard around it, and who the caller is.

Both policies keep their state in Redis when ``redis.url`` is set, so every gateway
replica enforces one limit and sees one cache. Redis is an optimisation of the gateway,
not a dependency of it: an outage is logged, counted and walked past (fail open).
"""

from __future__ import annotations

import hashlib
import logging
import time

from redis.asyncio import Redis
from starlette.types import Scope

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.observability.metrics import GATEWAY_POLICY_STORAGE_ERRORS

logger = logging.getLogger("orchestrion.gateway")


def open_redis(url: str, *, timeout: float) -> Redis:
    """A client that gives up quickly: a slow Redis must not slow every request."""
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    return client


class StorageGuard:
    """Fail open around a shared store.

    After a failure the store is left alone for ``pause`` seconds: during an outage
    requests then cost no connection attempt each, and the log gets one line per pause
    rather than one per request.
    """

    def __init__(self, policy: str, *, pause: float = 1.0) -> None:
        self.policy = policy
        self.pause = pause
        self._until = 0.0
        self._errors = GATEWAY_POLICY_STORAGE_ERRORS.labels(policy)

    def available(self) -> bool:
        """Whether to try the store now; a skipped call counts as a failure."""
        if time.monotonic() >= self._until:
            return True
        self._errors.inc()
        return False

    def failed(self, exc: BaseException) -> None:
        """Record a failure and pause the store."""
        self._errors.inc()
        if time.monotonic() >= self._until:
            logger.warning(
                "%s store unavailable, going on without it for %.1fs: %s: %s",
                self.policy, self.pause, type(exc).__name__, exc,
            )  # fmt: skip
        self._until = time.monotonic() + self.pause


def client_ip(scope: Scope) -> str:
    """The client's address as the gateway settled it (through trusted proxies), else the
    connecting peer's (``unknown`` over a transport without one)."""
    settled = scope.get("orchestrion.client_ip")
    if settled:
        return str(settled)
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def caller_id(principal: Principal | None, scope: Scope) -> str:
    """Whom a rate limit counts: the API key, the user, else the client IP."""
    if principal is None:
        return f"ip:{client_ip(scope)}"
    if principal.kind == "api_key":
        return f"key:{principal.api_key_id or principal.subject}"
    return f"user:{principal.subject}"


def vary_key(principal: Principal | None) -> str:
    """Whose cache a response goes to: tenant, principal and its permissions.

    Services answer per tenant and per caller, so a cached answer is only ever served
    to the same caller in the same tenant with the same rights.
    """
    if principal is None:
        return "anonymous"
    rights = hashlib.sha256(",".join(sorted(principal.permissions)).encode()).hexdigest()[:16]
    who = principal.api_key_id or principal.subject
    return f"{principal.tenant_id}/{principal.kind}/{who}/{rights}"
