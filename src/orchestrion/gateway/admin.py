"""The admin API: routes, upstreams and instances of a running gateway (``platform:admin``).

```
GET    /admin/routes
GET    /admin/upstreams
POST   /admin/upstreams/{name}/instances          {"url", "weight"?}   add an instance
PATCH  /admin/upstreams/{name}/instances/{id}     {"weight"?, "draining"?}
POST   /admin/upstreams/{name}/instances/{id}/drain
DELETE /admin/upstreams/{name}/instances/{id}
PATCH  /admin/routes/{prefix}/canary              {"weight"?, "enabled"?}  (rollback)
DELETE /admin/routes/{prefix}/canary              back to the config file's canary
POST   /admin/reload                               re-read the config file
```

``{prefix}`` is the route's prefix as it is (``/admin/routes/api/v1/workflows/canary``).

With Redis (``ORCHESTRION_REDIS__URL``) a change made on one gateway is shared with
every replica (:mod:`orchestrion.gateway.shared`): each applies it within the pub/sub
delay. Without it changes live in this gateway process. A weight set here stays until
changed here again, so a canary split survives config reloads; so does a route canary's
weight or ``enabled`` set here, until ``DELETE`` gives the config file's back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrion.gateway.balancer import Instance
from orchestrion.gateway.routes import Route
from orchestrion.kernel.errors import BadRequest, MethodNotAllowed, NotFound

if TYPE_CHECKING:
    from orchestrion.gateway.app import Gateway
    from orchestrion.gateway.proxy import HttpUpstream


class InstanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://")
    weight: int = Field(default=1, ge=0, le=1000)


class InstanceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: int | None = Field(default=None, ge=0, le=1000)
    draining: bool | None = None


class CanaryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float | None = Field(default=None, ge=0, le=100)
    enabled: bool | None = None


M = TypeVar("M", bound=BaseModel)
Handler = Callable[["Gateway", Request, dict[str, str]], Awaitable[Response]]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def _route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, re.compile(pattern), handler))
        return handler

    return register


async def dispatch(gateway: Gateway, request: Request, path: str) -> Response:
    """Run the handler for ``path`` (below the admin prefix)."""
    allowed = False
    for method, pattern, handler in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        allowed = True
        if method == request.method:
            return await handler(gateway, request, match.groupdict())
    if allowed:
        raise MethodNotAllowed(f"{request.method} is not allowed here")
    raise NotFound(f"no admin resource at {path}")


@_route("GET", r"/routes")
async def list_routes(gateway: Gateway, _: Request, __: dict[str, str]) -> Response:
    """The route table in matching order."""
    return JSONResponse(
        {
            "data": [
                {
                    "prefix": r.prefix,
                    "service": r.service,
                    "rate_limit": r.rate_limit,
                    "cache_ttl": r.cache_ttl,
                    "transform": r.transform is not None,
                    "canary": _canary(gateway, r),
                }
                for r in gateway.routes.routes
            ]
        }
    )


@_route("GET", r"/upstreams")
async def list_upstreams(gateway: Gateway, _: Request, __: dict[str, str]) -> Response:
    """Every upstream with its breaker and instances."""
    data = []
    for name in sorted(gateway.upstreams):
        upstream = gateway.upstreams[name]
        describe = getattr(upstream, "describe", None)
        data.append({"name": name, **(describe() if describe else {"in_process": True})})
    return JSONResponse({"data": data})


@_route("POST", r"/upstreams/(?P<name>[^/]+)/instances")
async def add_instance(gateway: Gateway, request: Request, args: dict[str, str]) -> Response:
    """Add an instance by hand (source ``admin``)."""
    _http_upstream(gateway, args["name"])
    body = _parse(InstanceCreate, await _json(request))
    instance = Instance(url=body.url, weight=body.weight, source="admin")
    instance.pinned_weight = True
    gateway.admin_instances.setdefault(args["name"], []).append(instance)
    gateway.sync_upstreams()
    if gateway.shared is not None:
        await gateway.shared.add_instance(args["name"], instance)
    return JSONResponse(instance.describe(0.0), status_code=201)


@_route("PATCH", r"/upstreams/(?P<name>[^/]+)/instances/(?P<id>[^/]+)")
async def update_instance(gateway: Gateway, request: Request, args: dict[str, str]) -> Response:
    """Change an instance's weight (a canary split) or drain it."""
    instance = _instance(gateway, args)
    body = _parse(InstanceUpdate, await _json(request))
    if body.weight is not None:
        instance.weight = body.weight
        instance.pinned_weight = True
        _http_upstream(gateway, args["name"]).pool.rebuild()
    if body.draining is not None:
        instance.draining = body.draining
    if gateway.shared is not None:
        await gateway.shared.override(args["name"], instance)
    return JSONResponse(instance.describe(0.0))


@_route("POST", r"/upstreams/(?P<name>[^/]+)/instances/(?P<id>[^/]+)/drain")
async def drain_instance(gateway: Gateway, _: Request, args: dict[str, str]) -> Response:
    """Send no new request to the instance; those in flight finish."""
    instance = _instance(gateway, args)
    instance.draining = True
    if gateway.shared is not None:
        await gateway.shared.override(args["name"], instance)
    return JSONResponse(instance.describe(0.0))


@_route("DELETE", r"/upstreams/(?P<name>[^/]+)/instances/(?P<id>[^/]+)")
async def remove_instance(gateway: Gateway, _: Request, args: dict[str, str]) -> Response:
    """Forget an instance added by hand (others come back from the config or registry)."""
    instance = _instance(gateway, args)
    added = gateway.admin_instances.get(args["name"], [])
    if instance not in added:
        raise BadRequest("only instances added through the admin API can be removed; drain it")
    added.remove(instance)
    gateway.sync_upstreams()
    if gateway.shared is not None:
        await gateway.shared.remove_instance(args["name"], instance)
    return Response(status_code=204)


@_route("PATCH", r"/routes(?P<prefix>/.*)/canary")
async def update_canary(gateway: Gateway, request: Request, args: dict[str, str]) -> Response:
    """Change a route's canary weight or switch it off, at once (``weight: 0`` or
    ``enabled: false`` is the rollback)."""
    route = _canary_route(gateway, args["prefix"])
    body = _parse(CanaryUpdate, await _json(request))
    override = dict(gateway.canaries.overrides.get(route.prefix, {}))
    override.update(body.model_dump(exclude_none=True))
    gateway.canaries.overrides[route.prefix] = override
    if gateway.shared is not None:
        await gateway.shared.override_canary(route.prefix, override)
    return JSONResponse(_canary(gateway, route))


@_route("DELETE", r"/routes(?P<prefix>/.*)/canary")
async def reset_canary(gateway: Gateway, _: Request, args: dict[str, str]) -> Response:
    """Forget the admin API's changes: the config file's canary applies again."""
    route = _canary_route(gateway, args["prefix"])
    gateway.canaries.overrides.pop(route.prefix, None)
    if gateway.shared is not None:
        await gateway.shared.override_canary(route.prefix, None)
    return JSONResponse(_canary(gateway, route))


@_route("POST", r"/reload")
async def reload(gateway: Gateway, _: Request, __: dict[str, str]) -> Response:
    """Re-read the configuration file now."""
    gateway.reload_config(force=True)
    return JSONResponse({"routes": len(gateway.routes.routes), "config": str(gateway.config_path)})


def _canary_route(gateway: Gateway, prefix: str) -> Route:
    for route in gateway.routes.routes:
        if route.prefix == prefix:
            if route.canary is None:
                raise NotFound(f"the route {prefix} has no canary (give one in the config file)")
            return route
    raise NotFound(f"no route with the prefix {prefix}")


def _canary(gateway: Gateway, route: Route) -> dict[str, Any] | None:
    canary = gateway.canaries.effective(route)
    if canary is None:
        return None
    described = dataclasses.asdict(canary)
    header = described.pop("header")
    described["header"] = {"name": header[0], "value": header[1]} if header else None
    described["overridden"] = sorted(gateway.canaries.overrides.get(route.prefix, {}))
    return described


def _http_upstream(gateway: Gateway, name: str) -> HttpUpstream:
    from orchestrion.gateway.proxy import HttpUpstream

    upstream = gateway.upstreams.get(name)
    if not isinstance(upstream, HttpUpstream):
        raise NotFound(f"no remote upstream named {name!r}")
    return upstream


def _instance(gateway: Gateway, args: dict[str, str]) -> Instance:
    instance = _http_upstream(gateway, args["name"]).pool.find(args["id"])
    if instance is None:
        raise NotFound(f"no instance {args['id']!r} in {args['name']!r}")
    return instance


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise BadRequest("the body must be JSON") from None


def _parse(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise BadRequest("invalid body", errors=errors) from None
