"""The ``orchestrion`` command line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.panel import Panel

from orchestrion import __version__

if TYPE_CHECKING:
    from orchestrion.kernel.bus import Bus
    from orchestrion.kernel.db import Database
    from orchestrion.settings import Settings

# Commands import what they use when they run: `version` and `--help` load neither the
# settings, SQLAlchemy nor asyncio, so they answer at once.

T = TypeVar("T")


def _run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, asyncio imported when a command first needs it."""
    import asyncio

    return asyncio.run(main)


app = typer.Typer(
    help="Orchestrion: a frontend-ready backend for AI workflows.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
events_app = typer.Typer(help="The event bus (ORCHESTRION_BUS__URL).", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: events a group gave up on.", no_args_is_help=True)
events_app.add_typer(dlq_app, name="dlq")
app.add_typer(events_app, name="events")
cluster_app = typer.Typer(help="The distributed shape as local processes.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
analytics_app = typer.Typer(help="Analytics projections.", no_args_is_help=True)
app.add_typer(analytics_app, name="analytics")
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
certs_app = typer.Typer(help="Certificates for mutual TLS between services.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")
console = Console()
err = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    from orchestrion.settings import Settings

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValueError as exc:
        err.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None
    if settings.tls.enabled:
        try:
            settings.tls.client_context()  # unreadable files stop here, clearly
        except OSError as exc:  # ssl.SSLError is one
            err.print(f"[red]invalid settings:[/red] ORCHESTRION_TLS__*: {exc}")
            raise typer.Exit(2) from None
    return settings


def open_database(settings: Settings) -> Database:
    """The configured database (see :func:`orchestrion.settings.open_database`)."""
    from orchestrion.settings import open_database

    return open_database(settings)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secure(settings: Settings, *, command: str, host: str | None, generate: bool) -> None:
    """Refuse to serve other hosts with the public development secret (exit 2).

    Unset, the secret is read from ``<data_dir>/secret_key``; ``up`` and ``cluster up`` on
    loopback create that file (0600) the first time. Production never reaches here
    without ``ORCHESTRION_SECRET_KEY`` (the settings refuse it).
    """
    from orchestrion.kernel.crypto import create_secret_file, read_secret_file

    if not settings.uses_development_secret:
        return
    path = settings.data_dir / "secret_key"
    local = host is None or _loopback(host)
    secret = read_secret_file(path)
    if secret is None and generate and local:
        secret = create_secret_file(path)
        err.print(
            "[bold yellow]WARNING: ORCHESTRION_SECRET_KEY is not set: generated a secret key "
            f"in {path} (mode 0600), used from now on.[/bold yellow]\n"
            "It signs identities and encrypts signing and provider keys: back it up with the "
            "data, and set ORCHESTRION_SECRET_KEY before serving other hosts.",
            soft_wrap=True,
        )
    if secret is not None:
        settings.use_secret(secret)
        return
    if not local:
        err.print(
            f"[red]refusing to start:[/red] `orchestrion {command}` listens on {host}, reachable "
            "from other hosts, and ORCHESTRION_SECRET_KEY is not set: anyone could sign "
            "identities with the public development secret. Set ORCHESTRION_SECRET_KEY to a "
            "long random value, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )
        raise typer.Exit(2)


def _check_signing_keys(settings: Settings) -> None:
    """Exit 2 with a clear message when the secret cannot read the stored signing keys."""
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrion.services.auth.bootstrap import check_signing_keys
    from orchestrion.services.auth.keys import UnreadableSigningKey

    async def check() -> None:
        database = open_database(settings)
        try:
            await check_signing_keys(database, settings)
        finally:
            await database.dispose()

    try:
        _run(check())
    except UnreadableSigningKey as exc:
        err.print(f"[red]refusing to start:[/red] {exc}")
        raise typer.Exit(2) from None
    except SQLAlchemyError:
        pass  # no schema yet: the service reports that itself


def _schema_revision(settings: Settings) -> str | None:
    """The revision the configured database is at (``None``: never migrated)."""
    from orchestrion.migrations import current_revision

    async def read() -> str | None:
        database = open_database(settings)
        try:
            return await current_revision(database.engine)
        finally:
            await database.dispose()

    return _run(read())


def _require_schema(settings: Settings, *, command: str) -> None:
    """Exit 2 with what to run when the database is not migrated to this version's schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrion.migrations import head_revision, is_behind

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        current = _schema_revision(settings)
    except (SQLAlchemyError, OSError) as exc:
        err.print(
            f"[red]refusing to start:[/red] `orchestrion {command}` cannot read the "
            f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        )
        raise typer.Exit(2) from None
    if current is None or is_behind(current):
        state = "was never migrated" if current is None else f"is at revision {current}"
        err.print(
            f"[red]refusing to start:[/red] the database {state}; this version needs "
            f"{head_revision()}. Run `orchestrion db upgrade` (with the same settings) first."
        )
        raise typer.Exit(2)


def _prepare(settings: Settings) -> None:
    """Migrate the schema, then create the first admin if the database is empty."""
    from orchestrion.migrations import upgrade
    from orchestrion.services.auth.bootstrap import ensure_bootstrap

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)

    async def bootstrap() -> None:
        from orchestrion.kernel.errors import OrchestrionError

        database = open_database(settings)
        try:
            result = await ensure_bootstrap(database, settings)
        except OrchestrionError as exc:
            err.print(f"[red]cannot create the first admin:[/red] {exc.detail}")
            raise typer.Exit(2) from None
        finally:
            await database.dispose()
        if result.generated_password:
            console.print(
                Panel(
                    f"email:    [bold]{result.email}[/bold]\n"
                    f"password: [bold]{result.generated_password}[/bold]\n\n"
                    "Shown once. Set ORCHESTRION_ADMIN_PASSWORD to choose it yourself.",
                    title="First start: admin account created",
                )
            )
        elif result.created:
            console.print(f"Admin account created: [bold]{result.email}[/bold]")

    _run(bootstrap())


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Address to bind (ORCHESTRION_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (ORCHESTRION_PORT).")] = None,
) -> None:
    """Start the whole platform in one process (embedded: SQLite, in-process bus)."""
    from orchestrion.kernel.collector import pause_collector, resume_collector

    pause_collector()
    from orchestrion.kernel.observability.logging import configure_logging
    from orchestrion.platform import create_embedded_app

    settings = _settings(host=host, port=port)
    _secure(settings, command="up", host=settings.host, generate=True)
    configure_logging(
        level=settings.observability.log_level, format=settings.observability.log_format
    )
    _tracing("orchestrion")
    _prepare(settings)
    _check_signing_keys(settings)
    console.print(
        f"Orchestrion {__version__} on [bold]{settings.base_url}[/bold]  "
        f"(docs: {settings.base_url}/docs, health: {settings.base_url}/health)"
    )
    platform = create_embedded_app(settings)
    resume_collector()
    _uvicorn(platform, settings, gateway=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply schema migrations to the configured database."""
    from orchestrion.migrations import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url, revision)
    console.print(f"database at revision {revision}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    role: Annotated[
        list[str] | None, typer.Option(help="Role (repeatable): admin, editor, viewer.")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant name (default: the default tenant).")
    ] = None,
    platform_admin: Annotated[bool, typer.Option(help="May act across tenants.")] = False,
) -> None:
    """Create a user directly in the database."""
    from orchestrion.kernel.errors import OrchestrionError
    from orchestrion.services.auth.bootstrap import ensure_bootstrap
    from orchestrion.services.auth.passwords import PasswordPolicy
    from orchestrion.services.auth.service import create_user, tenant_by_name

    if role is None:
        role = ["viewer"]
    settings = _settings()
    _prepare(settings)

    async def run() -> str:
        database = open_database(settings)
        try:
            await ensure_bootstrap(database, settings)
            async with database.session() as session:
                found = await tenant_by_name(session, name=tenant or settings.default_tenant)
                user = await create_user(
                    session,
                    tenant_id=found.id,
                    email=email,
                    password=password,
                    roles=role or ["viewer"],
                    passwords=PasswordPolicy(min_length=settings.auth.password_min_length),
                    platform_admin=platform_admin,
                )
                return str(user.id)
        finally:
            await database.dispose()

    try:
        user_id = _run(run())
    except OrchestrionError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"user {email} created: {user_id}")


def _tracing(service: str) -> None:
    """This process's spans as ``service``, if the ``OTEL_*`` variables name an exporter."""
    from orchestrion.kernel.observability.tracing import configure_tracing

    configure_tracing(service, version=__version__)


def _uvicorn(
    target: object, settings: Settings, *, gateway: bool = False, tls: bool = False
) -> None:
    """Serve ``target``; a ``gateway`` keeps its services' ``Date`` (gateway/origin.py);
    ``tls`` serves HTTPS to callers with a certificate of the platform's CA (mutual TLS,
    when ``ORCHESTRION_TLS__*`` is set)."""
    import uvicorn

    config = _uvicorn_config(target, settings, gateway=gateway, tls=tls)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C after a graceful shutdown; stopping is not an error.
        console.print("stopped")


def _uvicorn_config(
    target: object, settings: Settings, *, gateway: bool = False, tls: bool = False
) -> Any:
    """The ``uvicorn.Config`` :func:`_uvicorn` serves ``target`` with."""
    import uvicorn

    from orchestrion.gateway.connections import protocol_class
    from orchestrion.gateway.origin import SERVER_HEADER, DateHeader

    return uvicorn.Config(
        DateHeader(target) if gateway else target,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=protocol_class(settings.gateway) if gateway else "httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
        headers=[SERVER_HEADER],
        date_header=not gateway,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        **(settings.tls.server_options() if tls else {}),
    )


@app.command()
def serve(
    service: Annotated[
        str,
        typer.Argument(
            help="auth, workflows, realtime, knowledge, content, templates, notifications, "
            "analytics or flags."
        ),
    ],
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    advertise: Annotated[
        str | None,
        typer.Option(
            help="URL gateways reach this instance at (default: http://host:port, or "
            "https:// with ORCHESTRION_TLS__*)."
        ),
    ] = None,
) -> None:
    """Run one service on its own (the distributed shape); a gateway routes to it.

    With ``ORCHESTRION_REDIS__URL`` set, the instance registers in the service registry
    (heartbeat with a TTL) so that gateways started with discovery find it. With
    ``ORCHESTRION_TLS__CA_FILE``, ``__CERT_FILE`` and ``__KEY_FILE`` set, it serves HTTPS
    and refuses callers without a certificate signed by that CA (mutual TLS).
    """
    from orchestrion.kernel.http.app import expose_metrics
    from orchestrion.kernel.observability.logging import configure_logging
    from orchestrion.platform import registered, service_factories

    factories = service_factories()
    if service not in factories:
        err.print(f"[red]unknown service {service!r}[/red]; one of: {', '.join(factories)}")
        raise typer.Exit(2)
    settings = _settings(host=host, port=port)
    _secure(settings, command=f"serve {service}", host=settings.host, generate=False)
    _require_schema(settings, command=f"serve {service}")
    if service == "auth":
        _check_signing_keys(settings)
    configure_logging(
        level=settings.observability.log_level, format=settings.observability.log_format
    )
    _tracing(service)
    scheme = settings.tls.scheme
    mutual = " (mutual TLS)" if settings.tls.enabled and settings.tls.require_client_cert else ""
    console.print(f"{service} on {scheme}://{settings.host}:{settings.port}{mutual}")
    app = expose_metrics(factories[service](settings), token=settings.observability.metrics_token)
    _uvicorn(registered(service, app, settings, advertise), settings, tls=True)


@app.command()
def gateway(
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="<service>=<base URL>[,<base URL>...] (repeatable), "
            "e.g. workflows=http://10.0.0.5:8002,http://10.0.0.6:8002."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML file of upstreams and routes, re-read when it changes."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="Gateway processes sharing the port (SO_REUSEPORT; "
            "ORCHESTRION_GATEWAY__WORKERS, default 1); more than 1 needs ORCHESTRION_REDIS__URL.",
        ),
    ] = None,
    worker_of: Annotated[int | None, typer.Option(hidden=True)] = None,
    worker_ready_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the gateway in front of services started with ``orchestrion serve``.

    Instances come from ``--upstream``, the ``--config`` file and, with
    ``ORCHESTRION_REDIS__URL`` set, the service registry. ``--workers N`` runs N gateway
    processes on the port under one supervisor (gateway/workers.py).
    """
    from orchestrion.gateway.app import create_gateway
    from orchestrion.gateway.config import ConfigError
    from orchestrion.gateway.proxy import HttpUpstream
    from orchestrion.gateway.upstream import Upstream
    from orchestrion.kernel.observability.logging import configure_logging

    overrides: dict[str, object] = {"host": host, "port": port}
    settings = _settings(**overrides)
    _secure(settings, command="gateway", host=settings.host, generate=False)
    if config is not None:
        settings.gateway.config = config
    configure_logging(
        level=settings.observability.log_level, format=settings.observability.log_format
    )
    _tracing("gateway")
    secret = settings.secret_key.get_secret_value().encode()
    upstreams: dict[str, Upstream] = {}
    for item in upstream or []:
        name, _, urls = item.partition("=")
        listed = [u.strip() for u in urls.split(",") if u.strip()]
        if not name or not listed or not all(u.startswith(("http://", "https://")) for u in listed):
            err.print(f"[red]--upstream {item!r}[/red]: expected <service>=http(s)://host:port")
            raise typer.Exit(2)
        upstreams[name] = HttpUpstream(
            name, listed, secret=secret, tls=settings.tls.client_context()
        )
    if workers is not None:
        settings.gateway.workers = workers
    if worker_of is not None and worker_ready_fd is not None:
        _gateway_worker(settings, upstreams, parent=worker_of, ready_fd=worker_ready_fd)
        return
    try:
        app = create_gateway(settings, upstreams, discover=True)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    names = ", ".join(sorted(upstreams)) or "registry"
    if settings.gateway.workers == 1:
        console.print(f"gateway on {settings.base_url} -> {names}")
        _uvicorn(app, settings, gateway=True)
        return
    del app  # it checked the configuration; each worker builds its own
    arguments = ["gateway", "--host", settings.host, "--port", str(settings.port)]
    arguments += [f"--upstream={item}" for item in upstream or []]
    if config is not None:
        arguments.append(f"--config={config}")
    _supervise_gateway(settings, arguments, names)


def _supervise_gateway(settings: Settings, arguments: list[str], names: str) -> None:
    """Run ``settings.gateway.workers`` gateway workers (``arguments``) on one port."""
    from orchestrion.gateway import workers

    count = settings.gateway.workers
    if not settings.redis.url:
        err.print(
            f"[red]--workers {count} needs ORCHESTRION_REDIS__URL[/red]: without Redis each "
            "worker would count rate limits on its own (N times looser) and keep admin API "
            "changes to itself; set it, or run one worker per gateway"
        )
        raise typer.Exit(2)
    if settings.port == 0:
        err.print(f"[red]--workers {count} needs a fixed --port[/red] (0 picks one per worker)")
        raise typer.Exit(2)
    busy = workers.port_is_free(settings.host, settings.port)
    if busy is not None:
        err.print(f"[red]cannot listen on {settings.host}:{settings.port}[/red]: {busy.strerror}")
        raise typer.Exit(2)
    console.print(f"gateway on {settings.base_url} -> {names} ({count} workers)")
    supervisor = workers.Supervisor(
        workers.worker_command(arguments),
        workers=count,
        grace_seconds=settings.shutdown_grace_seconds,
    )
    code = supervisor.run()
    if code:
        err.print("[red]gateway workers could not start[/red]: see the log above")
        raise typer.Exit(code)
    console.print("stopped")


def _gateway_worker(
    settings: Settings, upstreams: dict[str, Any], *, parent: int, ready_fd: int
) -> None:
    """One worker of ``orchestrion gateway --workers N``: its own socket on the port."""
    from orchestrion.gateway import workers
    from orchestrion.gateway.app import create_gateway
    from orchestrion.gateway.config import ConfigError

    workers.die_with_parent(parent)
    try:
        app = create_gateway(settings, upstreams, discover=True)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(workers.FATAL_EXIT) from None
    try:
        sock = workers.listening_socket(settings.host, settings.port)
    except OSError as exc:
        err.print(f"[red]cannot listen on {settings.host}:{settings.port}[/red]: {exc.strerror}")
        raise typer.Exit(workers.FATAL_EXIT) from None
    try:
        started = workers.serve(_uvicorn_config(app, settings, gateway=True), sock, ready_fd)
    except KeyboardInterrupt:
        return  # Ctrl-C reached the whole process group: the supervisor says "stopped"
    if not started:
        raise typer.Exit(3)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(help="Tasks run at a time (ORCHESTRION_ENGINE__WORKER_CONCURRENCY)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve /metrics on this port at ORCHESTRION_HOST "
            "(ORCHESTRION_OBSERVABILITY__WORKER_METRICS_PORT; 0: none).",
        ),
    ] = None,
) -> None:
    """Run workflow steps from the shared database until stopped (SIGINT or SIGTERM)."""
    import contextlib
    import signal

    from orchestrion.kernel.observability.logging import configure_logging
    from orchestrion.kernel.observability.metrics import serving_metrics
    from orchestrion.services.workflows.runtime import WorkflowsRuntime

    settings = _settings()
    _secure(settings, command="worker", host=None, generate=False)
    _require_schema(settings, command="worker")
    configure_logging(
        level=settings.observability.log_level, format=settings.observability.log_format
    )
    _tracing("worker")
    from orchestrion.engine import configure_expressions

    configure_expressions(max_size=settings.limits.expression_max_size)

    async def serve() -> None:
        database = open_database(settings)
        runtime = WorkflowsRuntime(
            settings, database, workers=concurrency or settings.engine.worker_concurrency
        )
        import asyncio

        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        port = settings.observability.worker_metrics_port if metrics_port is None else metrics_port
        try:
            async with contextlib.AsyncExitStack() as stack:
                if port:
                    bound = await stack.enter_async_context(
                        serving_metrics(
                            host=settings.host,
                            port=port,
                            token=settings.observability.metrics_token,
                        )
                    )
                    console.print(f"metrics on http://{settings.host}:{bound}/metrics")
                await stack.enter_async_context(runtime.running())
                owner = runtime.worker.owner if runtime.worker else "-"
                console.print(f"worker {owner} on {database.engine.url.render_as_string()}")
                await stopping.wait()
        finally:
            await database.dispose()

    _run(serve())
    console.print("worker stopped")


TopicOption = Annotated[str, typer.Option(help="The topic, e.g. workflows.executions.")]
GroupOption = Annotated[str | None, typer.Option(help="Only this consumer group.")]


def _with_bus(work: Callable[[Bus], Awaitable[None]]) -> None:
    from orchestrion.kernel.bus import BusUnavailable, is_memory, open_bus

    settings = _settings()
    if is_memory(settings.bus.url):
        err.print("the in-process bus keeps no dead letters; set ORCHESTRION_BUS__URL")
        raise typer.Exit(2)

    async def run() -> None:
        async with open_bus(settings.bus.url) as bus:
            await work(bus)

    try:
        _run(run())
    except BusUnavailable as exc:
        err.print(f"[red]bus unavailable:[/red] {exc}")
        raise typer.Exit(1) from None


@dlq_app.command("list")
def dlq_list(topic: TopicOption, group: GroupOption = None) -> None:
    """Show the dead letters of a topic, oldest first, one per line, tab-separated:
    dead-letter id (for --id), original event id, group, attempts, time, error."""

    async def work(bus: Bus) -> None:
        letters = await bus.dlq_list(topic, group)
        for letter in letters:
            original = letter.event.id if letter.event is not None else "-"
            fields = (
                letter.id,
                original,
                letter.group,
                str(letter.attempts),
                letter.time.isoformat(),
                letter.error,
            )
            typer.echo("\t".join(fields))
        err.print(f"{len(letters)} dead letter(s)")

    _with_bus(work)


@dlq_app.command("replay")
def dlq_replay(
    topic: TopicOption,
    group: GroupOption = None,
    event_id: Annotated[
        list[str] | None, typer.Option("--id", help="Only these (repeatable).")
    ] = None,
) -> None:
    """Publish dead letters again to the group that failed them (after a fix)."""

    async def work(bus: Bus) -> None:
        replayed = await bus.dlq_replay(topic, group, ids=event_id or None)
        console.print(f"{replayed} event(s) replayed")

    _with_bus(work)


@cluster_app.command("up")
def cluster_up(
    host: Annotated[str | None, typer.Option(help="Address every process binds.")] = None,
    port: Annotated[
        int | None, typer.Option(help="The gateway's port; services take the next ones.")
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes.")] = 1,
    instances: Annotated[
        list[str] | None,
        typer.Option(help="<service>=<count> (repeatable), e.g. workflows=2."),
    ] = None,
) -> None:
    """Start gateway, every service and workers as separate local processes, supervised.

    Database, Redis and bus come from the usual settings (ORCHESTRION_DATABASE__URL...);
    the database is migrated first. Ctrl-C stops everything.
    """
    from orchestrion import cluster

    settings = _settings(host=host, port=port)
    _secure(settings, command="cluster up", host=settings.host, generate=True)
    counts: dict[str, int] = {}
    for item in instances or []:
        name, _, count = item.partition("=")
        if name not in cluster.SERVICES or not count.isdigit() or int(count) < 1:
            err.print(f"[red]--instances {item!r}[/red]: expected <service>=<count>")
            raise typer.Exit(2)
        counts[name] = int(count)
    if settings.database_url.startswith("sqlite"):
        console.print(
            "[yellow]SQLite is shared by every process here; PostgreSQL "
            "(ORCHESTRION_DATABASE__URL) is the distributed shape's database.[/yellow]"
        )
    _prepare(settings)
    _check_signing_keys(settings)
    env = cluster.environment()
    env["ORCHESTRION_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.secret_key_previous is not None:
        env["ORCHESTRION_SECRET_KEY_PREVIOUS"] = settings.secret_key_previous.get_secret_value()
    children = cluster.plan(
        host=settings.host, port=settings.port, instances=counts, workers=workers,
        env=env, scheme=settings.tls.scheme,
    )  # fmt: skip
    for child in children:
        console.print(f"  {child.name}: orchestrion {' '.join(child.args)}")
    console.print(f"Orchestrion cluster on [bold]{settings.base_url}[/bold]")
    raise typer.Exit(cluster.run(children, console))


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant's chain (default: every chain).")
    ] = None,
) -> None:
    """Recompute the audit trail's hash chains from the database; exit 1 when a line was
    changed or removed (the first broken line of each chain is named)."""
    from orchestrion.services.auth.audit.service import verify

    settings = _settings()

    async def run() -> dict[str, Any]:
        database = open_database(settings)
        try:
            return await verify(database, tenant_id=tenant)
        finally:
            await database.dispose()

    result = _run(run())
    for chain in result["chains"]:
        name = f"tenant {chain['tenant_id']}" if chain["tenant_id"] else "platform"
        if chain["ok"]:
            console.print(f"{name}: [green]ok[/green], {chain['checked']} lines")
        else:
            broken = chain["first_broken"]
            err.print(
                f"{name}: [red]broken[/red] at line {broken['seq']} ({broken['id']}): "
                f"{broken['reason']}"
            )
    if not result["chains"]:
        console.print("no audit lines yet")
    if not result["ok"]:
        raise typer.Exit(1)


@analytics_app.command("rebuild")
def analytics_rebuild(
    tenant: Annotated[
        list[str] | None,
        typer.Option(help="Only this tenant id (repeatable; default: every tenant)."),
    ] = None,
) -> None:
    """Rebuild the analytics projections from scratch by replaying every execution's log
    through the workflows service's API (ORCHESTRION_PEERS or the registry when set, else
    the services in this process)."""
    import httpx

    from orchestrion.kernel.errors import OrchestrionError
    from orchestrion.kernel.http.peers import discover
    from orchestrion.platform import service_factories
    from orchestrion.services.analytics.rebuild import rebuild

    settings = _settings()
    _secure(settings, command="analytics rebuild", host=None, generate=False)
    secret = settings.secret_key.get_secret_value().encode()

    async def run() -> str:
        database = open_database(settings)
        clients, owned = await discover(
            ("workflows", "auth"),
            secret=secret,
            urls=settings.peers,
            registry_url=settings.redis.url if settings.gateway.registry else None,
            registry_prefix=settings.gateway.registry_prefix,
            verify=settings.tls.client_context(),
        )
        local: list[httpx.AsyncClient] = []
        factories = service_factories()
        for name in ("workflows", "auth"):
            if name not in clients:
                # No running instance named: read the shared database through the
                # service's own app in this process (its API, not its tables).
                transport = httpx.ASGITransport(
                    app=factories[name](settings), raise_app_exceptions=False
                )
                local.append(httpx.AsyncClient(transport=transport, base_url=f"http://{name}"))
                clients[name] = local[-1]
        try:
            done = await rebuild(
                database,
                workflows=clients["workflows"],
                auth=clients["auth"],
                secret=secret,
                tenants=tenant or None,
            )
        finally:
            for client in local:
                await client.aclose()
            for peers in owned:
                await peers.aclose()
            await database.dispose()
        return (
            f"rebuilt: {done.executions} execution(s), {done.events} event(s) "
            f"of {done.tenants} tenant(s)"
        )

    try:
        console.print(_run(run()))
    except OrchestrionError as exc:
        err.print(f"[red]rebuild failed:[/red] {exc.detail}")
        raise typer.Exit(1) from None


@certs_app.command("dev")
def certs_dev(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write them (default: <data dir>/tls)."),
    ] = None,
    hosts: Annotated[
        str,
        typer.Option(help="Comma-separated IP addresses and DNS names the services answer at."),
    ] = "127.0.0.1,localhost",
    days: Annotated[int, typer.Option(min=1, help="Validity, in days.")] = 365,
    force: Annotated[bool, typer.Option(help="Replace existing files.")] = False,
) -> None:
    """Make a local CA and one server+client certificate signed by it, and print the
    settings that use them (``eval "$(orchestrion certs dev)"``). For trying mutual TLS
    on one machine; production uses its own CA."""
    import shlex

    from orchestrion.certs import CertificatesExist, make_dev_certificates

    if directory is None:
        directory = _settings().data_dir / "tls"
    names = [h.strip() for h in hosts.split(",") if h.strip()]
    if not names:
        err.print("[red]--hosts[/red]: name at least one address or DNS name")
        raise typer.Exit(2)
    try:
        made = make_dev_certificates(directory, hosts=names, days=days, force=force)
    except CertificatesExist as exc:
        err.print(
            f"[red]refusing to overwrite[/red] {', '.join(str(p) for p in exc.paths)}: "
            "services using them would stop trusting each other. Pass --force to replace them."
        )
        raise typer.Exit(1) from None
    err.print(
        f"CA and certificate for {', '.join(names)} in {made.ca_file.parent} "
        f"(valid {days} days); use them with:"
    )
    for name, value in made.environment().items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    """Entry point of the ``orchestrion`` script."""
    app()
