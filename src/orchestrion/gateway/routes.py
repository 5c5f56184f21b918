"""The route table: which service answers a path, and what a caller needs to reach it.

Routes are matched by longest path prefix. Each route names the public paths that need
no credentials and the permission each method/path needs; services check finer rules
themselves (defence in depth), the gateway refuses early and cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orchestrion.kernel.auth.permissions import Permission

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Rule:
    """``permission`` is needed for ``methods`` on paths matching ``pattern``."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    permission: str | None


def rule(methods: str, pattern: str, permission: str | None) -> Rule:
    """A rule from a method list (``"GET,HEAD"`` or ``"*"``) and a path regex."""
    wanted = frozenset({"*"}) if methods == "*" else frozenset(methods.split(","))
    return Rule(wanted, re.compile(pattern), permission)


@dataclass(frozen=True)
class Transform:
    """A route's rewrites: its prefix replaced, headers set or removed, fields allow-listed."""

    rewrite: str | None = None
    request_set: tuple[tuple[str, str], ...] = ()
    request_remove: frozenset[str] = frozenset()
    response_set: tuple[tuple[str, str], ...] = ()
    response_remove: frozenset[str] = frozenset()
    response_fields: frozenset[str] | None = None

    @property
    def active(self) -> bool:
        """Whether this changes anything."""
        return bool(
            self.rewrite is not None
            or self.request_set
            or self.request_remove
            or self.response_set
            or self.response_remove
            or self.response_fields
        )


@dataclass(frozen=True)
class Canary:
    """Another version of a route's service taking part of its traffic.

    A request carrying ``header`` (name, value) goes to ``upstream``; else one for whom
    ``flag`` is on; else a sticky ``weight`` percent of principals (or client addresses).
    ``enabled: false`` sends everything to the route's own service.
    """

    upstream: str
    weight: float = 0.0
    header: tuple[str, str] | None = None
    flag: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Route:
    """Paths starting with ``prefix`` go to ``service``, under its policies."""

    prefix: str
    service: str
    public: tuple[Rule, ...] = ()
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    #: Rate limit of this route (``limits`` notation), counted apart from the default;
    #: ``""`` exempts the route, None applies the gateway's default.
    rate_limit: str | None = None
    #: Freshness (seconds) of cached GET responses when the service gives none;
    #: None leaves the route uncached.
    cache_ttl: float | None = None
    transform: Transform | None = None
    #: Answers carry ``Deprecation``/``Sunset`` (in ``transform``); OpenAPI says deprecated.
    deprecated: bool = False
    #: Part of the traffic goes to another upstream (a new version of the service).
    canary: Canary | None = None

    def matches(self, path: str) -> bool:
        """Whether ``path`` is this prefix or below it."""
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")

    def is_public(self, method: str, path: str) -> bool:
        """Whether ``method path`` needs no credentials."""
        return any(_applies(r, method, path) for r in self.public)

    def permission_for(self, method: str, path: str) -> str | None:
        """The permission the first matching rule asks for (None: any authenticated caller)."""
        for r in self.rules:
            if _applies(r, method, path):
                return r.permission
        return None


def _applies(r: Rule, method: str, path: str) -> bool:
    return ("*" in r.methods or method in r.methods) and r.pattern.fullmatch(path) is not None


class RouteTable:
    """Routes ordered by prefix length so the most specific wins."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)
        # By prefix without its trailing slash: a path looks up its own prefixes, longest
        # first, instead of trying every route.
        self._by_base: dict[str, list[Route]] = {}
        for route in self.routes:
            self._by_base.setdefault(route.prefix.rstrip("/"), []).append(route)

    def match(self, path: str) -> Route | None:
        """The route for ``path``, if any: the longest prefix it is, or is below."""
        base = path
        while True:
            for route in self._by_base.get(base, ()):
                if route.matches(path):
                    return route
            cut = base.rfind("/")
            if cut < 0:
                return None
            base = base[:cut]

    def deprecated(self, path: str) -> bool:
        """Whether the route serving ``path`` is deprecated."""
        route = self.match(path)
        return route is not None and route.deprecated

    def versions(self) -> list[tuple[str, str]]:
        """``(prefix, rewrite)`` of the routes that serve another path's API under their own."""
        return [
            (r.prefix, r.transform.rewrite)
            for r in self.routes
            if r.transform is not None and r.transform.rewrite is not None
        ]

    @property
    def services(self) -> list[str]:
        """The services the table routes to, in a stable order."""
        return sorted({r.service for r in self.routes})


_WF = Permission
DEFAULT_ROUTES = [
    Route(prefix="/.well-known", service="auth", public=(rule("GET,HEAD", r".*", None),)),
    Route(
        prefix="/api/v1/auth",
        service="auth",
        public=(
            rule("POST", r"/api/v1/auth/(login|refresh|sso/exchange)", None),
            rule("GET,HEAD", r"/api/v1/auth/sso/(providers|[^/]+/(login|callback))", None),
        ),
    ),
    # The audit trail is kept by auth, which also checks audit:read itself.
    Route(
        prefix="/api/v1/audit",
        service="auth",
        rules=(rule("GET,HEAD", r".*", _WF.AUDIT_READ),),
    ),
    Route(
        prefix="/api/v1/workflows",
        service="workflows",
        rules=(
            rule("POST", r"/api/v1/workflows/[^/]+/executions", _WF.EXECUTIONS_RUN),
            rule("GET,HEAD", r"/api/v1/workflows/[^/]+/executions", _WF.EXECUTIONS_READ),
            rule("GET,HEAD", r".*", _WF.WORKFLOWS_READ),
            rule("*", r".*", _WF.WORKFLOWS_WRITE),
        ),
    ),
    Route(
        prefix="/api/v1/mcp",
        service="workflows",
        rules=(
            rule("GET,HEAD", r".*", _WF.WORKFLOWS_READ),
            rule("*", r".*", _WF.WORKFLOWS_WRITE),
        ),
    ),
    # MCP clients: any authenticated caller; the service shows each principal the
    # workflows it may run (none without executions:run).
    Route(prefix="/mcp", service="workflows"),
    # The socket authenticates itself too (subprotocol or first frame), so an upgrade
    # without credentials passes; a bad Authorization header is still refused here.
    Route(prefix="/ws", service="realtime", public=(rule("GET", r"/ws", None),)),
    # Webhook triggers prove themselves with an HMAC signature, not a token.
    Route(
        prefix="/api/v1/hooks",
        service="workflows",
        public=(rule("POST", r"/api/v1/hooks/[^/]+", None),),
    ),
    Route(
        prefix="/api/v1/executions",
        service="workflows",
        rules=(
            rule("GET,HEAD", r".*", _WF.EXECUTIONS_READ),
            rule("*", r".*", _WF.EXECUTIONS_RUN),
        ),
    ),
    # Search is a POST that only reads.
    Route(
        prefix="/api/v1/knowledge",
        service="knowledge",
        rules=(
            rule("GET,HEAD", r".*", _WF.KNOWLEDGE_READ),
            rule("POST", r"/api/v1/knowledge/search", _WF.KNOWLEDGE_READ),
            rule("*", r".*", _WF.KNOWLEDGE_WRITE),
        ),
    ),
    # Search and analysis are POSTs that only read.
    Route(
        prefix="/api/v1/content",
        service="content",
        rules=(
            rule("GET,HEAD", r".*", _WF.CONTENT_READ),
            rule("POST", r"/api/v1/content/(search|analyze)", _WF.CONTENT_READ),
            rule("*", r".*", _WF.CONTENT_WRITE),
        ),
    ),
    # Plugins (WebAssembly) are served by the content service too; a call changes
    # nothing stored (the service also asks for executions:run).
    Route(
        prefix="/api/v1/plugins",
        service="content",
        rules=(
            rule("GET,HEAD", r".*", _WF.PLUGINS_READ),
            rule("POST", r"/api/v1/plugins/[^/]+/call", _WF.PLUGINS_READ),
            rule("*", r".*", _WF.PLUGINS_WRITE),
        ),
    ),
    # Making a workflow from a template reads the template; the workflows service checks
    # workflows:write itself, on the caller's identity.
    Route(
        prefix="/api/v1/templates",
        service="templates",
        rules=(
            rule("GET,HEAD", r".*", _WF.TEMPLATES_READ),
            rule("POST", r"/api/v1/templates/[^/]+/instantiate", _WF.TEMPLATES_READ),
            rule("*", r".*", _WF.TEMPLATES_WRITE),
        ),
    ),
    # A user's own preferences and inbox are theirs to change with read access.
    Route(
        prefix="/api/v1/notifications",
        service="notifications",
        rules=(
            rule("GET,HEAD", r".*", _WF.NOTIFICATIONS_READ),
            rule("PUT", r"/api/v1/notifications/preferences", _WF.NOTIFICATIONS_READ),
            rule("POST", r"/api/v1/notifications/inbox/[^/]+/read", _WF.NOTIFICATIONS_READ),
            rule("*", r".*", _WF.NOTIFICATIONS_WRITE),
        ),
    ),
    Route(
        prefix="/api/v1/analytics",
        service="analytics",
        rules=(
            rule("GET,HEAD", r".*", _WF.ANALYTICS_READ),
            rule("*", r".*", _WF.ANALYTICS_WRITE),
        ),
    ),
    # Any authenticated caller evaluates a flag for itself; the service also asks
    # managers to be platform admins.
    Route(
        prefix="/api/v1/flags",
        service="flags",
        rules=(
            rule("GET,HEAD", r"/api/v1/flags/[^/]+/evaluate", None),
            rule("GET,HEAD", r".*", _WF.FLAGS_READ),
            rule("*", r".*", _WF.FLAGS_WRITE),
        ),
    ),
    # Provider keys and budgets are an admin's; reading them and usage, an editor's.
    *(
        Route(
            prefix=prefix,
            service="workflows",
            rules=(
                rule("GET,HEAD", r".*", _WF.LLM_READ),
                rule("*", r".*", _WF.LLM_WRITE),
            ),
        )
        for prefix in ("/api/v1/llm", "/api/v1/budgets", "/api/v1/usage")
    ),
]
