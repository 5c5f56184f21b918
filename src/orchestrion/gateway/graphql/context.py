"""What every resolver gets: the caller, its REST calls and the operation's loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from orchestrion.gateway.graphql.calls import Calls, Dispatcher, Problem
from orchestrion.gateway.graphql.loaders import Loaders
from orchestrion.kernel.auth.principal import Principal


@dataclass
class Context:
    """One HTTP operation's context, or one WebSocket connection's.

    A socket authenticates at ``connection_init``, after the context exists: the
    principal is filled in then, and calls and loaders are made on first use.
    """

    gateway: Dispatcher
    request: Request | WebSocket
    principal: Principal | None = None
    connection_params: dict[str, Any] | None = None
    _calls: Calls | None = field(default=None, repr=False)
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def calls(self) -> Calls:
        """The REST calls of this caller; refused when nobody authenticated."""
        if self.principal is None:
            raise Problem(401, "authentication required: send a bearer token or an API key")
        if self._calls is None:
            self._calls = Calls(self.gateway, self.principal, self.request.scope)
        return self._calls

    @property
    def loaders(self) -> Loaders:
        """The operation's DataLoaders. A socket's connection outlives its operations, so
        its loaders batch but never cache (an answer must not be served stale later)."""
        if self._loaders is None:
            self._loaders = Loaders(self.calls, cache=self.request.scope["type"] == "http")
        return self._loaders


Info = strawberry.Info[Context, None]
