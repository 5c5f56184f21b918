"""The internal gRPC server: ``orchestrion.v1.WorkflowService`` beside HTTP.

It runs in the workflows service's lifespan (so ``orchestrion up`` and ``orchestrion
serve workflows`` both serve it) with server reflection and ``grpc.health.v1``, and calls
the same service layer as the REST routes: starting an execution is the REST start
(idempotency keys included), and its event stream follows the same log as the SSE
stream, so events committed by worker processes and other instances arrive too.

A stream ends after the terminal event, or when the client cancels or its deadline
passes: gRPC then cancels the handler's task, which only ever awaits the database or
the engine's change notice, so nothing outlives the call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, NoReturn

import grpc
import httpx
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orchestrion.engine import Engine
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Revocations
from orchestrion.kernel.auth.tokens import TokenVerifier
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import BadRequest, OrchestrionError
from orchestrion.kernel.http.idempotency import MAX_KEY_LENGTH, run_idempotent
from orchestrion.kernel.http.peers import discover
from orchestrion.services.workflows.executions import service
from orchestrion.services.workflows.executions.schemas import ExecutionStart
from orchestrion.services.workflows.grpc import convert
from orchestrion.services.workflows.grpc.auth import CallAuthenticator
from orchestrion.services.workflows.grpc.v1 import workflows_pb2 as pb
from orchestrion.services.workflows.grpc.v1 import workflows_pb2_grpc as pb_grpc
from orchestrion.settings import Settings, open_revocations

logger = logging.getLogger("orchestrion.workflows.grpc")
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["WorkflowService"].full_name
#: Seconds running calls get to finish when the server stops.
STOP_GRACE = 2.0
_OPTIONS = [
    # Linux lets a second server bind a port in use with SO_REUSEPORT and then splits the
    # calls between them: a port in use must be an error instead.
    ("grpc.so_reuseport", 0),
    # Ping idle connections so a vanished client's long stream is noticed and ended.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
]


async def _abort(context: grpc.aio.ServicerContext, error: OrchestrionError) -> NoReturn:
    if error.status_code >= 500:
        logger.warning("gRPC call failed: %s", error.detail)
    context.set_trailing_metadata(convert.retry_after(error))
    await context.abort(convert.status_code(error), convert.details(error))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


async def _internal(context: grpc.aio.ServicerContext) -> NoReturn:
    logger.exception("gRPC call failed")
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class WorkflowService(pb_grpc.WorkflowServiceServicer):
    """The RPCs, mapped onto the executions service layer."""

    def __init__(
        self, *, database: Database, engine: Engine, authenticator: CallAuthenticator
    ) -> None:
        self.database = database
        self.engine = engine
        self.authenticator = authenticator

    async def _caller(self, context: grpc.aio.ServicerContext, *needed: str) -> Principal:
        principal = await self.authenticator.principal(context.invocation_metadata())
        for permission in needed:
            principal.require(permission)
        return principal

    async def ExecuteWorkflow(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExecutionEvent]:
        """Start an execution, then stream its log from seq 1 to the terminal event."""
        try:
            principal = await self._caller(
                context, Permission.EXECUTIONS_RUN, Permission.EXECUTIONS_READ
            )
            execution_id = await self._start(principal, request)
            async for event in service.follow_events(
                self.database, engine=self.engine, execution_id=execution_id
            ):
                yield convert.event_message(execution_id, event)
        except OrchestrionError as exc:
            await _abort(context, exc)
        except Exception:
            await _internal(context)

    async def GetWorkflowStatus(
        self, request: pb.StatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.StatusResponse:
        """The execution's status, outputs and error."""
        try:
            principal = await self._caller(context, Permission.EXECUTIONS_READ)
            if not request.execution_id:
                raise BadRequest("execution_id is required")
            async with self.database.session() as session:
                execution = await service.get_execution(
                    session, tenant_id=principal.tenant_id, execution_id=request.execution_id
                )
                body = await service.execution_dict(session, execution)
            return convert.status_message(body)
        except OrchestrionError as exc:
            await _abort(context, exc)
        except Exception:
            await _internal(context)

    async def _start(self, principal: Principal, request: pb.ExecuteRequest) -> str:
        """Start (or, for a known idempotency key, find) the execution; its id."""
        if not request.workflow_id:
            raise BadRequest("workflow_id is required")
        if len(request.idempotency_key) > MAX_KEY_LENGTH:
            raise BadRequest(f"idempotency_key must be at most {MAX_KEY_LENGTH} characters")
        # The REST body, so a key used with either API replays the same execution.
        start = ExecutionStart(inputs=convert.inputs_from(request.inputs))
        workflow_id = request.workflow_id
        # Committed before streaming: the workers must see the execution to run it.
        async with self.database.session() as session:

            async def produce() -> tuple[int, Any]:
                execution = await service.start_execution(
                    session,
                    engine=self.engine,
                    principal=principal,
                    workflow_id=workflow_id,
                    inputs=start.inputs,
                    priority=start.priority,
                )
                return 202, await service.execution_dict(session, execution)

            response = await run_idempotent(
                session,
                request=None,
                key=request.idempotency_key or None,
                scope=service.start_scope(principal, workflow_id),
                payload=start.model_dump(mode="json"),
                produce=produce,
            )
        return str(json.loads(bytes(response.body))["id"])


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    config = settings.grpc
    if config.tls_cert_file is None or config.tls_key_file is None:
        return None
    pair = (config.tls_key_file.read_bytes(), config.tls_cert_file.read_bytes())
    return grpc.ssl_server_credentials([pair])


def _verifier(
    settings: Settings, auth: httpx.AsyncClient | None, revocations: Revocations
) -> TokenVerifier | None:
    if auth is None:
        logger.warning("no auth service known: gRPC calls will be refused (UNAVAILABLE)")
        return None
    return TokenVerifier(
        auth,
        issuer=settings.auth.issuer,
        audience=settings.auth.audience,
        jwks_cache_seconds=settings.gateway.jwks_cache_seconds,
        jwks_min_refresh_seconds=settings.gateway.jwks_min_refresh_seconds,
        api_key_cache_seconds=settings.auth.api_key_cache_seconds,
        revocations=revocations,
    )


class GrpcServer:
    """The gRPC server of one workflows process; ``port`` is the bound one once running."""

    def __init__(self, settings: Settings, *, database: Database, engine: Engine) -> None:
        self.settings = settings
        self.database = database
        self.engine = engine
        self.host = settings.grpc.host or settings.host
        self.port: int | None = None
        self.health = health.aio.HealthServicer()

    @property
    def address(self) -> str:
        """``host:port`` clients reach this server at (once running)."""
        return _address(self.host, self.port or self.settings.grpc.port)

    @asynccontextmanager
    async def running(
        self,
        *,
        peers: Mapping[str, httpx.AsyncClient] | None = None,
        revocations: Revocations | None = None,
    ) -> AsyncIterator[GrpcServer]:
        """Serve while inside; ``peers`` and ``revocations`` are the composer's, if any."""
        settings = self.settings
        async with AsyncExitStack() as stack:
            clients, owned = await discover(
                ("auth",),
                secret=settings.secret_key.get_secret_value().encode(),
                given=peers,
                urls=settings.peers,
                registry_url=settings.redis.url if settings.gateway.registry else None,
                registry_prefix=settings.gateway.registry_prefix,
                verify=settings.tls.client_context(),
            )
            for peer_set in owned:
                stack.push_async_callback(peer_set.aclose)
            if revocations is None:
                revocations = open_revocations(settings)
                await stack.enter_async_context(revocations)
            servicer = WorkflowService(
                database=self.database,
                engine=self.engine,
                authenticator=CallAuthenticator(
                    _verifier(settings, clients.get("auth"), revocations)
                ),
            )
            server = grpc.aio.server(options=_OPTIONS)
            # The generated registration is untyped code.
            pb_grpc.add_WorkflowServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
            health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
            reflection.enable_server_reflection(
                (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )
            self.port = self._bind(server)
            await server.start()
            stack.push_async_callback(self._stop, server)
            for name in ("", SERVICE_NAME):
                await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            tls = " (TLS)" if settings.grpc.tls_cert_file else ""
            logger.info("gRPC WorkflowService on %s%s", self.address, tls)
            yield self

    def _bind(self, server: grpc.aio.Server) -> int:
        address = _address(self.host, self.settings.grpc.port)
        credentials = _credentials(self.settings)
        try:
            if credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise RuntimeError(f"gRPC cannot listen on {address}: {exc}") from None
        if not port:
            raise RuntimeError(f"gRPC cannot listen on {address} (in use?)")
        return int(port)

    async def _stop(self, server: grpc.aio.Server) -> None:
        await self.health.enter_graceful_shutdown()
        await server.stop(STOP_GRACE)
        self.port = None
