"""Distributed tracing: OpenTelemetry, configured by the standard ``OTEL_*`` variables.

Off unless an exporter is named: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``) or
an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``).
Off, every helper here returns at once (one module flag read): no provider, no context
switch, no header parsed - tracing off costs nothing measurable.

On, each process gets its own provider with its ``service.name`` (``gateway``,
``workflows``, ``worker``...; ``OTEL_SERVICE_NAME`` overrides), a batch span processor
(``OTEL_BSP_*``) and the OTLP/HTTP (protobuf) exporter, which reads the endpoint,
headers and timeout from ``OTEL_EXPORTER_OTLP_*`` itself. The sampler is the SDK's:
``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based always-on).

The W3C ``traceparent`` crosses every hop the platform controls: HTTP headers (in and
out), the task table (a task carries the traceparent of the span that enqueued it, so
the worker that claims it continues the trace) and bus events (the CloudEvents
distributed-tracing extension attribute).
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "SpanKind",
    "TracingMiddleware",
    "add_event",
    "configure_tracing",
    "context_of",
    "enabled",
    "inject",
    "inject_hook",
    "instrument_engine",
    "set_attributes",
    "shutdown_tracing",
    "span",
    "trace_id_of",
    "traced_send",
    "traceparent",
]

logger = logging.getLogger("orchestrion.tracing")

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "orchestrion"


class _State:
    enabled = False
    provider: Any = None
    tracer: trace.Tracer = trace.NoOpTracer()
    service = ""


_state = _State()


def enabled() -> bool:
    """Whether this process records spans."""
    return _state.enabled


def _wanted(env: Mapping[str, str]) -> list[str]:
    """The exporters the environment names; none means tracing stays off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return [e.strip() for e in named.split(",") if e.strip() and e.strip() != "none"]
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return ["otlp"] if endpoint else []


def configure_tracing(
    service: str, *, version: str = "", env: Mapping[str, str] | None = None
) -> bool:
    """Set up this process's tracer provider as ``service`` if the environment asks;
    True when tracing is on. Called once per process, next to ``configure_logging``."""
    env = os.environ if env is None else env
    exporters = _wanted(env)
    if not exporters or _state.enabled:
        return _state.enabled
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    name = env.get("OTEL_SERVICE_NAME") or service
    attributes = {"service.name": name, "service.namespace": "orchestrion"}
    if version:
        attributes["service.version"] = version
    resource = Resource.create(attributes)
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    for exporter in exporters:
        if exporter == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                logger.warning("OTLP protocol %r is not supported; using http/protobuf", protocol)
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            logger.warning("unknown OTEL_TRACES_EXPORTER %r ignored", exporter)
    use_provider(provider, service=name)
    return True


def use_provider(provider: Any, *, service: str = "") -> None:
    """Record spans with ``provider`` (an SDK ``TracerProvider``; tests pass their own)."""
    _state.provider = provider
    _state.tracer = provider.get_tracer(_TRACER_NAME)
    _state.service = service
    _state.enabled = True


def shutdown_tracing() -> None:
    """Flush and stop the provider (the SDK also does so at exit); tracing is off after."""
    provider, _state.provider = _state.provider, None
    _state.enabled = False
    _state.tracer = trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


# --- spans -------------------------------------------------------------------------


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """A span made current for the block (a non-recording one when tracing is off).

    ``parent``: a W3C traceparent to continue (a task's, an event's) when no span is
    current; a span already current is the parent otherwise. An exception marks the
    span as failed and goes on.
    """
    if not _state.enabled:
        return _OFF
    context = None
    if parent is not None and not trace.get_current_span().get_span_context().is_valid:
        context = context_of(parent)
    return _state.tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=_clean(attributes)
    )


# Off, every span is this one context manager: nothing to allocate, nothing to attach.
_OFF: contextlib.AbstractContextManager[Span] = contextlib.nullcontext(INVALID_SPAN)


def set_attributes(values: Mapping[str, Any], current: Span | None = None) -> None:
    """Set attributes on ``current`` (the current span by default); None values skipped."""
    if not _state.enabled:
        return
    target = current if current is not None else trace.get_current_span()
    target.set_attributes(_clean(values) or {})


def add_event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """An event on the current span (a retry, a cache hit, a refusal)."""
    if not _state.enabled:
        return
    trace.get_current_span().add_event(name, _clean(attributes) or {})


def fail(current: Span, message: str) -> None:
    """Mark ``current`` as failed with ``message``."""
    if _state.enabled:
        current.set_status(Status(StatusCode.ERROR, message))


def _clean(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not values:
        return None
    return {k: v for k, v in values.items() if v is not None}


# --- propagation -------------------------------------------------------------------


def traceparent(current: Span | None = None) -> str | None:
    """The W3C traceparent of ``current`` (the current span by default), None when off."""
    if not _state.enabled:
        return None
    target = current if current is not None else trace.get_current_span()
    found = target.get_span_context()
    if not found.is_valid:
        return None
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{int(found.trace_flags):02x}"


def context_of(value: str | None) -> otel_context.Context | None:
    """The context a traceparent names (None if it is absent or malformed)."""
    if not value:
        return None
    context = _PROPAGATOR.extract({"traceparent": value})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def trace_id_of(value: str | None) -> str | None:
    """The trace id (32 hex digits) of a stored traceparent."""
    if not value or len(value) < 35 or value[2] != "-":
        return None
    return value[3:35]


def inject(headers: MutableMapping[str, str]) -> None:
    """Put the current span's ``traceparent`` (and ``tracestate``) into ``headers``."""
    if _state.enabled:
        _PROPAGATOR.inject(headers)


def inject_raw(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """ASGI-style ``headers`` with the client's trace headers replaced by the current span's."""
    if not _state.enabled:
        return headers
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if not carrier:
        return headers
    kept = [(k, v) for k, v in headers if k not in _TRACE_HEADERS]
    kept.extend((k.encode(), v.encode("latin-1")) for k, v in carrier.items())
    return kept


_TRACE_HEADERS = (b"traceparent", b"tracestate")


def _extract_scope(scope: Scope) -> otel_context.Context | None:
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in _TRACE_HEADERS
    }
    if not carrier:
        return None
    context = _PROPAGATOR.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


# --- HTTP servers ------------------------------------------------------------------


class TracingMiddleware:
    """One SERVER span per HTTP request, continuing the client's ``traceparent``; named
    ``METHOD route-template`` once the route is known. WebSocket sessions (hours long)
    get none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request inside its span."""
        if not _state.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = scope.get("path", "")
        attributes = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scope.get("scheme"),
            "orchestrion.request_id": scope.get("state", {}).get("request_id"),
        }
        client = scope.get("client")
        if client:
            attributes["client.address"] = str(client[0])
        status = 0

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with _state.tracer.start_as_current_span(
            f"{method} {path}",
            context=_extract_scope(scope),
            kind=SpanKind.SERVER,
            attributes=_clean(attributes),
        ) as current:
            try:
                await self.app(scope, receive, observe)
            finally:
                route = scope.get("orchestrion.route") or _route_template(scope)
                if route:
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", route)
                if status:
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        current.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


def _route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else None


# --- logs and the database ------------------------------------------------------------


def add_trace_ids(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, if any."""
    if not _state.enabled:
        return event_dict
    found = trace.get_current_span().get_span_context()
    if found.is_valid:
        event_dict.setdefault("trace_id", f"{found.trace_id:032x}")
        event_dict.setdefault("span_id", f"{found.span_id:016x}")
    return event_dict


_traced_engines: weakref.WeakSet[Any] = weakref.WeakSet()


class _InTraceOnly:
    """A tracer whose spans exist only inside a trace: the statements of an idle
    worker's polling, a heartbeat or a relay would otherwise each start a trace."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start_span(self, name: str, context: Any = None, **options: Any) -> Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return INVALID_SPAN
        return self.tracer.start_span(name, context, **options)


def instrument_engine(engine: Any) -> None:
    """Spans for the SQL statements of ``engine`` (an async or sync SQLAlchemy engine)."""
    if not _state.enabled:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    sync = getattr(engine, "sync_engine", engine)
    if sync in _traced_engines:
        return
    _traced_engines.add(sync)
    # The instrumentor's own entry point instruments once per process; every engine
    # (one per service in the embedded shape) gets its listeners this way instead.
    usage = NoOpMeter("orchestrion").create_up_down_counter("db.client.connections.usage")
    tracer = _InTraceOnly(_state.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"))
    EngineTracer(tracer, sync, usage, enable_commenter=False)  # type: ignore[no-untyped-call]


# --- HTTP clients ------------------------------------------------------------------


async def traced_send(request: Any, send: Callable[[Any], Awaitable[Any]]) -> Any:
    """Send an httpx ``request`` with ``send`` inside a CLIENT span whose context goes
    out as the request's ``traceparent`` (the query string stays out of the span)."""
    if not _state.enabled:
        return await send(request)
    url = request.url
    method = str(request.method)
    with _state.tracer.start_as_current_span(
        method,
        kind=SpanKind.CLIENT,
        attributes=_clean(
            {
                "http.request.method": method,
                "url.full": f"{url.scheme}://{url.host}{':' + str(url.port) if url.port else ''}"
                f"{url.path}",
                "server.address": url.host,
                "server.port": url.port,
            }
        ),
    ) as current:
        _PROPAGATOR.inject(request.headers)
        response = await send(request)
        status = int(response.status_code)
        current.set_attribute("http.response.status_code", status)
        if status >= 500:
            current.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        return response


async def inject_hook(request: Any) -> None:
    """An httpx ``request`` event hook: the current span's ``traceparent`` goes along."""
    if _state.enabled:
        _PROPAGATOR.inject(request.headers)
