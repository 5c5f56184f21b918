"""What the workflows service runs on besides HTTP, built in one place.

:class:`WorkflowsRuntime` builds the engine with what its step types need (HTTP, the
platform's models, MCP servers), the live paths of execution events and model tokens,
and the workers, all through constructors. ``running()`` starts and stops them in order.
Both the API app (``create_app``) and ``orchestrion worker`` use it, so the two shapes
cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from cryptography.fernet import Fernet

from orchestrion.engine import (
    HTTP,
    LLM,
    MCP,
    SERVICES,
    Engine,
    EngineLimits,
    HttpAccess,
    McpPool,
    McpServers,
    ServiceCallError,
    StepCall,
    Worker,
)
from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus import Bus, Subscription, is_memory, service_bus
from orchestrion.kernel.bus.outbox import OutboxRelay
from orchestrion.kernel.crypto import rotating_fernet
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.http.peers import discover
from orchestrion.kernel.http.tls import client_context
from orchestrion.kernel.personal import subscribe_erasure
from orchestrion.kernel.queue import TaskQueue
from orchestrion.services.workflows import personal
from orchestrion.services.workflows.automation import service as automation
from orchestrion.services.workflows.executions.live import LivePublisher
from orchestrion.services.workflows.executions.service import resolve_workflow
from orchestrion.services.workflows.llm.backend import PlatformLlm
from orchestrion.services.workflows.llm.token_bus import (
    TokenBatcher,
    TokenFeed,
    forget_group,
    instance_group,
    open_token_bus,
    subscribe_tokens,
)
from orchestrion.services.workflows.mcp import service as mcp_servers
from orchestrion.settings import Settings

#: Where execution events are published (CloudEvents ``orchestrion.<event type>``).
EXECUTION_TOPIC = "workflows.executions"
#: The services step types call (``content``, ``plugin``, ``knowledge`` and ``notify``
#: steps), and the templates service the MCP endpoint offers templates from.
STEP_SERVICES = ("content", "knowledge", "notifications", "templates", "flags")


def llm_fernet(settings: Settings) -> Fernet:
    """The cipher of tenants' LLM provider keys."""
    secret = settings.secret_key.get_secret_value().encode()
    return rotating_fernet(
        secret, purpose="orchestrion-llm-provider-keys-v1", previous=settings.previous_secrets
    )


def mcp_fernet(settings: Settings) -> Fernet:
    """The key tenants' MCP server headers are encrypted under."""
    secret = settings.secret_key.get_secret_value().encode()
    return rotating_fernet(secret, purpose="orchestrion-mcp-v1", previous=settings.previous_secrets)


def create_mcp_servers(settings: Settings, database: Database) -> McpServers:
    """The MCP servers ``mcp`` steps reach: the configured ones and each tenant's."""
    config = settings.mcp
    return McpServers(
        pool=McpPool(
            connect_timeout=config.connect_timeout_seconds,
            max_sessions=config.max_sessions,
            idle_seconds=config.idle_seconds,
        ),
        configured=dict(config.servers),
        tenant_lookup=mcp_servers.tenant_lookup(database=database, fernet=mcp_fernet(settings)),
        allowlist=tuple(settings.engine.http_allowlist),
        call_timeout=config.call_timeout_seconds,
    )


#: A service answering one of these may answer differently later.
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def _reason(response: httpx.Response) -> str:
    """The problem's detail (or title), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:500]
    return str(body)[:200]


class PeerCalls:
    """The ``SERVICES`` requirement: how ``content``, ``plugin``, ``knowledge`` and
    ``notify`` steps reach their services, over HTTP.

    Each call goes to the named service's public API with a signed identity header
    (``kernel.auth.identity``) for a principal of the execution's tenant holding only the
    permissions the step asked for: the service checks tenancy and permissions exactly as
    for a client, so a workflow reaches what its tenant owns and nothing more. The
    clients are bound when the runtime starts (:meth:`bind`): in-process ASGI clients in
    the embedded shape, else base URLs from ``ORCHESTRION_PEERS``, else the service
    registry (Redis), as for any peer (``kernel.http.peers.discover``).
    """

    def __init__(self, secret: bytes, *, timeout: float = 30.0) -> None:
        self._secret = secret
        self._timeout = timeout
        self._clients: Mapping[str, httpx.AsyncClient] = {}

    def bind(self, clients: Mapping[str, httpx.AsyncClient]) -> None:
        """Use ``clients`` (service name → client) from now on."""
        self._clients = clients

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        call: StepCall,
        permissions: tuple[str, ...],
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send the request as the execution; its JSON answer (raises ServiceCallError)."""
        principal = Principal(
            subject=f"execution:{call.execution_id}",
            tenant_id=call.tenant_id,
            permissions=frozenset(permissions),
        )
        return await self.request(
            service,
            method,
            path,
            principal=principal,
            json=json,
            params=params,
            idempotency_key=call.idempotency_key,
        )

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        principal: Principal,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send the request as ``principal``; its JSON answer (raises ServiceCallError).

        ``idempotency_key`` goes with the methods that change something only.
        """
        client = self._clients.get(service)
        if client is None:
            raise ServiceCallError(
                f"the {service} service is not known to this process", status=None, retryable=True
            )
        headers = {IDENTITY_HEADER: encode_identity(principal, self._secret)}
        if idempotency_key is not None and method.upper() not in ("GET", "HEAD"):
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await client.request(
                method, path, json=json, params=params, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise ServiceCallError(
                f"{service}: {type(exc).__name__}: {exc}", status=None, retryable=True
            ) from exc
        if response.status_code >= 400:
            raise ServiceCallError(
                f"{service} answered {response.status_code}: {_reason(response)}",
                status=response.status_code,
                retryable=response.status_code in _RETRYABLE,
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceCallError(
                f"{service} answered a body that is not JSON", status=None, retryable=False
            ) from exc


class WorkflowsRuntime:
    """The engine, its step resources, live updates and workers of one process.

    ``workers`` runs that many concurrent attempts here (0: none, the API only);
    ``feed_tokens`` makes this process's SSE streams hear other processes' tokens.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        workers: int,
        feed_tokens: bool = False,
    ) -> None:
        self.settings = settings
        self.database = database
        self.feed_tokens = feed_tokens
        self.http = httpx.AsyncClient(follow_redirects=False, verify=client_context())
        broker = not is_memory(settings.bus.url)
        # With a broker, realtime and other processes read events and tokens from it;
        # in process, they are pushed to realtime's internal endpoint.
        self.publisher = None if broker else LivePublisher()
        self.batcher = (
            TokenBatcher(
                open_token_bus(settings.bus.url),
                interval=settings.llm.token_flush_seconds,
                max_chars=settings.llm.token_flush_chars,
                owns_bus=True,
            )
            if broker
            else None
        )
        self.llm = PlatformLlm(
            settings.llm,
            database,
            llm_fernet(settings),
            self.http,
            publisher=self.publisher,
            batcher=self.batcher,
        )
        self.mcp = create_mcp_servers(settings, database)
        self.peer_calls = PeerCalls(settings.secret_key.get_secret_value().encode())
        config = settings.engine
        self.engine = Engine(
            database,
            resources={
                HTTP: HttpAccess(
                    self.http,
                    tuple(config.http_allowlist),
                    max_response_bytes=config.http_max_response_bytes,
                ),
                LLM: self.llm,
                MCP: self.mcp,
                SERVICES: self.peer_calls,
            },
            env={name: os.environ[name] for name in config.env_allowlist if name in os.environ},
            queue=TaskQueue(
                database,
                lease=timedelta(seconds=config.lease_seconds),
                max_attempts=config.max_task_attempts,
            ),
            resolver=resolve_workflow,
            # Every shape publishes execution events on the bus (in process: the memory bus)
            # for the services that project them (analytics, notifications); in process,
            # realtime still gets them pushed directly, without the relay's delay.
            outbox_topic=EXECUTION_TOPIC,
            handlers={automation.SCHEDULE_TASK: automation.fire},
            listeners=[self.publisher.listen] if self.publisher is not None else [],
            limits=EngineLimits.from_settings(config),
        )
        self.worker = (
            Worker(self.engine, concurrency=workers, poll_seconds=config.poll_seconds)
            if workers > 0
            else None
        )

    @asynccontextmanager
    async def running(
        self,
        *,
        bus: Bus | None = None,
        peers: Mapping[str, httpx.AsyncClient] | None = None,
    ) -> AsyncIterator[WorkflowsRuntime]:
        """Start everything (on the process's shared ``bus``, if any), stop it on exit.

        ``peers`` are the in-process clients of the other services, if they run here
        (realtime for live events; content and knowledge for steps).
        """
        realtime = (peers or {}).get("realtime")
        async with contextlib.AsyncExitStack() as stack:
            settings = self.settings
            clients, owned_peers = await discover(
                STEP_SERVICES,
                secret=settings.secret_key.get_secret_value().encode(),
                given=peers,
                urls=settings.peers,
                registry_url=settings.redis.url if settings.gateway.registry else None,
                registry_prefix=settings.gateway.registry_prefix,
                verify=settings.tls.client_context(),
            )
            for peer_set in owned_peers:
                stack.push_async_callback(peer_set.aclose)
            self.peer_calls.bind(clients)
            stack.push_async_callback(self.http.aclose)
            stack.push_async_callback(self.mcp.aclose)
            stack.push_async_callback(self.engine.queue.close)
            broker, owned = await service_bus(bus, self.settings.bus.url)
            if broker is not None:
                if owned:
                    stack.push_async_callback(broker.close)
                relay = OutboxRelay(self.database, broker)
                relay.start()
                stack.push_async_callback(relay.stop)
                # Erasures of people: anonymise their names here (any one instance).
                erasures = await subscribe_erasure(
                    broker, self.database, service=personal.SERVICE, erase=personal.erase
                )
                stack.push_async_callback(erasures.stop)
            if self.publisher is not None and realtime is not None:
                self.publisher.start(realtime)
                stack.push_async_callback(self.publisher.stop)
            if self.batcher is not None:
                await self.batcher.bus.start()
                self.batcher.start()
                stack.push_async_callback(self.batcher.stop)
                if self.feed_tokens and broker is not None:
                    feed = TokenFeed(self.llm.hub.publish, origin=self.batcher.origin)
                    # A group per instance: every instance's SSE streams get every batch.
                    group = instance_group(self.settings.llm.token_bus_group, self.batcher.origin)
                    subscription = await subscribe_tokens(broker, group, feed)
                    stack.push_async_callback(_leave_tokens, broker, subscription)
            if self.worker is not None:
                running = asyncio.create_task(self.worker.run(), name="engine-worker")
                stack.push_async_callback(self._stop_worker, running)
            yield self

    async def _stop_worker(self, running: asyncio.Task[None]) -> None:
        assert self.worker is not None
        self.worker.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def _leave_tokens(broker: Bus, subscription: Subscription) -> None:
    """Stop reading tokens and remove this instance's group from the broker."""
    await subscription.stop()
    await forget_group(broker, subscription.group)
