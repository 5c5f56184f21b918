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
routes:
  - prefix: /api/v1/workflows           # same prefix as a built-in route: refines it
    service: workflows
    rate_limit: 100/minute
    cache_ttl: 10
  - prefix: /legacy
    service: workflows
    permission: workflows:read          # or public: true
    rewrite: /api/v1/workflows          # the prefix is replaced by this
    request_headers: {set: {X-Team: core}, remove: [Cookie]}
    response_headers: {set: {Cache-Control: no-store}, remove: [Server]}
    response_fields: [id, name, status] # allow-list of fields (of each item of a list)
composites:
  - path: /api/v1/dashboard
    parts: {workflows: /api/v1/workflows?limit=5, executions: /api/v1/executions?limit=5}
```

Errors in the file are reported with their location; at start-up they stop the gateway,
on a reload the running configuration stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrion.gateway.balancer import Instance, OutlierPolicy, Strategy
from orchestrion.gateway.policies.breaker import BreakerPolicy
from orchestrion.gateway.routes import Route, Rule, Transform, rule
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
            response_set=tuple((k.lower(), v) for k, v in self.response_headers.set.items()),
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
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
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
            )
        return list(by_prefix.values())
