"""The gateway's YAML configuration: upstreams (instances and how to reach them) and routes.

```yaml
upstreams:
  workflows:
    instances: ["http://10.0.0.5:8002", {url: "http://10.0.0.6:8002", weight: 9}]
    balancing: least_outstanding        # round_robin | least_outstanding | consistent_hash
    hash_key: principal                 # principal | ip | header:<name> (consistent_hash)
    retries: 2
    timeouts: {connect: 2, read: 300, total: null}
    health: {path: /health/live, interval: 5, timeout: 2}
    breaker: {failure_threshold: 5, open_seconds: 5, half_open_requests: 1}
    outlier: {consecutive_failures: 3, eject_seconds: 10}
  workflows-v2:                         # a new version, defined like any upstream
    instances: ["http://10.0.0.7:8002"]
routes:
  - prefix: /api/v1/workflows           # same prefix as a built-in route: refines it
    service: workflows
    rate_limit: 100/minute
    cache_ttl: 10
    canary:                             # part of the traffic to another upstream
      upstream: workflows-v2
      header: {name: X-Canary, value: "1"}  # first: requests carrying it
      flag: new-workflows               # then: callers for whom the flag is on
      weight: 5                         # then: a sticky 5 % of principals
  - prefix: /api/v2/workflows           # a new version beside v1, served by the same API
    service: workflows
    rewrite: /api/v1/workflows
  - prefix: /legacy
    service: workflows
    permission: workflows:read          # or public: true
    rewrite: /api/v1/workflows          # the prefix is replaced by this
    request_headers: {set: {X-Team: core}, remove: [Cookie]}
    response_headers: {set: {Cache-Control: no-store}, remove: [Server]}
    response_fields: [id, name, status] # allow-list of fields (of each item of a list)
    deprecation:                        # Deprecation (RFC 9745), Sunset (RFC 8594), Link
      since: 2026-01-01T00:00:00Z
      sunset: 2026-12-31T23:59:59Z
      successor: /api/v2/workflows      # Link rel="successor-version"
      policy: https://example.com/api/deprecations  # Link rel="deprecation"
composites:
  - path: /api/v1/dashboard
    parts: {workflows: /api/v1/workflows?limit=5, executions: /api/v1/executions?limit=5}
```

Errors in the file are reported with their location; at start-up they stop the gateway,
on a reload the running configuration stays.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrion.gateway.balancer import Instance, OutlierPolicy, Strategy
from orchestrion.gateway.policies.breaker import BreakerPolicy
from orchestrion.gateway.routes import Canary, Route, Rule, Transform, rule
from orchestrion.gateway.upstream import UpstreamPolicy


class ConfigError(ValueError):
    """The configuration file cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InstanceConfig(_Strict):
    url: str
    weight: int = Field(default=1, ge=0)
    id: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an instance URL starts with http:// or https://")
        return value


class Timeouts(_Strict):
    connect: float = Field(default=2.0, gt=0)
    read: float | None = Field(default=300.0, gt=0)
    total: float | None = Field(default=None, gt=0)


class HealthCheck(_Strict):
    path: str = "/health/live"
    interval: float = Field(default=5.0, ge=0)
    timeout: float = Field(default=2.0, gt=0)


class BreakerConfig(_Strict):
    failure_threshold: int = Field(default=5, ge=1)
    open_seconds: float = Field(default=5.0, gt=0)
    half_open_requests: int = Field(default=1, ge=1)


class OutlierConfig(_Strict):
    consecutive_failures: int = Field(default=3, ge=1)
    eject_seconds: float = Field(default=10.0, gt=0)


class UpstreamConfig(_Strict):
    instances: list[str | InstanceConfig] = Field(default_factory=list)
    balancing: Strategy = "round_robin"
    hash_key: str = "principal"
    retries: int = Field(default=2, ge=0, le=5)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    health: HealthCheck = Field(default_factory=HealthCheck)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    outlier: OutlierConfig = Field(default_factory=OutlierConfig)

    def policy(self) -> UpstreamPolicy:
        """The proxy's policy for this upstream."""
        return UpstreamPolicy(
            strategy=self.balancing,
            hash_key=self.hash_key,
            retries=self.retries,
            connect_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.read,
            total_timeout=self.timeouts.total,
            max_response_bytes=self.max_response_bytes,
            health_path=self.health.path,
            health_interval=self.health.interval,
            health_timeout=self.health.timeout,
            breaker=BreakerPolicy(**self.breaker.model_dump()),
            outlier=OutlierPolicy(**self.outlier.model_dump()),
        )

    def static_instances(self) -> list[Instance]:
        """The instances listed in the file."""
        return [
            Instance(url=i)
            if isinstance(i, str)
            else Instance(url=i.url, weight=i.weight, id=i.id or "")
            for i in self.instances
        ]


class HeaderChanges(_Strict):
    set: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class DeprecationConfig(_Strict):
    """A route on its way out: when it was deprecated, when it goes, what replaces it."""

    since: dt.datetime
    sunset: dt.datetime | None = None
    successor: str | None = None
    policy: str | None = None

    @field_validator("since", "sunset")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # a date without a zone is UTC
        return value

    @field_validator("successor", "policy")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in '<>"\r\n')):
            raise ValueError("a link target is a path or URL without <, >, quotes or newlines")
        return value

    def headers(self) -> tuple[tuple[str, str], ...]:
        """``Deprecation`` (a structured-field date), ``Sunset`` (an HTTP date), ``Link``."""
        headers = [("deprecation", f"@{int(self.since.timestamp())}")]
        if self.sunset is not None:
            headers.append(("sunset", format_datetime(self.sunset.astimezone(dt.UTC), usegmt=True)))
        links = [f'<{self.successor}>; rel="successor-version"'] if self.successor else []
        links += [f'<{self.policy}>; rel="deprecation"'] if self.policy else []
        if links:
            headers.append(("link", ", ".join(links)))
        return tuple(headers)


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FLAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class CanaryHeader(_Strict):
    """Requests carrying this header with this value go to the canary."""

    name: str
    value: str

    @field_validator("name")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError("a header name is a token (letters, digits, -, _ ...)")
        if value.lower().startswith("x-orchestrion-"):
            raise ValueError("X-Orchestrion-* headers are the gateway's own")
        return value

    @field_validator("value")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value or not value.isprintable():
            raise ValueError("a header value is printable text, not empty")
        return value


class CanaryConfig(_Strict):
    """Another upstream taking part of a route's traffic: by header, flag, then weight."""

    upstream: str
    weight: float = Field(default=0.0, ge=0, le=100)
    header: CanaryHeader | None = None
    flag: str | None = None
    enabled: bool = True

    @field_validator("flag")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and not _FLAG_KEY.fullmatch(value):
            raise ValueError("a flag key matches [A-Za-z0-9][A-Za-z0-9_.-]*")
        return value

    @model_validator(mode="after")
    def _splits(self) -> CanaryConfig:
        if not {"weight", "header", "flag"} & self.model_fields_set:
            raise ValueError("a canary splits traffic by weight, header or flag: give one")
        return self

    def canary(self) -> Canary:
        """The route's canary."""
        return Canary(
            upstream=self.upstream,
            weight=self.weight,
            header=(self.header.name.lower(), self.header.value) if self.header else None,
            flag=self.flag,
            enabled=self.enabled,
        )


class RouteConfig(_Strict):
    prefix: str
    service: str
    public: bool = False
    permission: str | None = None
    rate_limit: str | None = None
    cache_ttl: float | None = Field(default=None, ge=0)
    rewrite: str | None = None
    request_headers: HeaderChanges = Field(default_factory=HeaderChanges)
    response_headers: HeaderChanges = Field(default_factory=HeaderChanges)
    response_fields: list[str] | None = None
    deprecation: DeprecationConfig | None = None
    canary: CanaryConfig | None = None

    @field_validator("prefix")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a route prefix starts with /")
        return value

    def transform(self) -> Transform | None:
        """The route's rewrites, or None when it has none."""
        transform = Transform(
            rewrite=self.rewrite,
            request_set=tuple((k.lower(), v) for k, v in self.request_headers.set.items()),
            request_remove=frozenset(h.lower() for h in self.request_headers.remove),
            response_set=tuple((k.lower(), v) for k, v in self.response_headers.set.items())
            + (self.deprecation.headers() if self.deprecation else ()),
            response_remove=frozenset(h.lower() for h in self.response_headers.remove),
            response_fields=frozenset(self.response_fields) if self.response_fields else None,
        )
        return transform if transform.active else None


class CompositeConfig(_Strict):
    path: str
    parts: dict[str, str]


class GatewayConfig(_Strict):
    """The whole file."""

    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    composites: list[CompositeConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _canaries_are_upstreams(self) -> GatewayConfig:
        for n, route in enumerate(self.routes):
            if route.canary is None:
                continue
            where = f"routes.{n}.canary.upstream"
            if route.canary.upstream == route.service:
                raise ValueError(f"{where}: the canary is another upstream than the route's")
            if route.canary.upstream not in self.upstreams:
                raise ValueError(
                    f"{where}: no upstream named {route.canary.upstream!r} in upstreams"
                )
        return self

    @classmethod
    def load(cls, path: Path) -> GatewayConfig:
        """Read and validate ``path``."""
        try:
            raw: Any = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
                for e in exc.errors()
            )
            raise ConfigError(f"{path}: {where}") from None

    def merged_routes(self, defaults: list[Route]) -> list[Route]:
        """The built-in routes refined or extended by the file's."""
        by_prefix = {r.prefix: r for r in defaults}
        for item in self.routes:
            base = by_prefix.get(item.prefix)
            public: tuple[Rule, ...] = (rule("*", r".*", None),) if item.public else ()
            rules: tuple[Rule, ...] = (
                (rule("*", r".*", item.permission),) if item.permission else ()
            )
            if base is not None and not item.public and item.permission is None:
                public, rules = base.public, base.rules
            by_prefix[item.prefix] = Route(
                prefix=item.prefix,
                service=item.service,
                public=public,
                rules=rules,
                rate_limit=item.rate_limit,
                cache_ttl=item.cache_ttl,
                transform=item.transform(),
                deprecated=item.deprecation is not None,
                canary=item.canary.canary() if item.canary else None,
            )
        return list(by_prefix.values())
