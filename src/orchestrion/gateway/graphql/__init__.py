"""GraphQL at the gateway (``/graphql``): a schema over the services' REST APIs.

Strawberry, graphql-core and the schema take a few tenths of a second to load and build,
so :class:`GraphQLMount` makes the endpoint (:mod:`.endpoint`) on the first request to
``/graphql``, not when the gateway starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from orchestrion.gateway.graphql.calls import Dispatcher
    from orchestrion.gateway.graphql.endpoint import GraphQLEndpoint, Refuse
    from orchestrion.gateway.policies.auth import Authenticator
    from orchestrion.gateway.policies.ratelimit import RateLimiter
    from orchestrion.settings import Settings

PATH = "/graphql"
ASSETS = "/graphql/assets/"

__all__ = ["ASSETS", "PATH", "GraphQLMount"]


class GraphQLMount:
    """``/graphql`` (and GraphiQL's assets) in the gateway; the endpoint is made on first use."""

    def __init__(
        self,
        *,
        gateway: Dispatcher,
        settings: Settings,
        authenticator: Authenticator,
        rate_limiter: RateLimiter,
        refuse: Refuse,
    ) -> None:
        self.gateway = gateway
        self.settings = settings
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.refuse = refuse
        self._endpoint: GraphQLEndpoint | None = None

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is GraphQL's."""
        return path == PATH or path.startswith(ASSETS)

    @property
    def endpoint(self) -> GraphQLEndpoint:
        """The endpoint, made now if no request made it yet."""
        if self._endpoint is None:
            from orchestrion.gateway.graphql.endpoint import GraphQLEndpoint

            self._endpoint = GraphQLEndpoint(
                gateway=self.gateway, settings=self.settings, authenticator=self.authenticator,
                rate_limiter=self.rate_limiter, refuse=self.refuse,
            )  # fmt: skip
        return self._endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or socket."""
        await self.endpoint(scope, receive, send)

    async def aclose(self) -> None:
        """Release the persisted-query store (if a request made the endpoint)."""
        if self._endpoint is not None:
            await self._endpoint.aclose()
