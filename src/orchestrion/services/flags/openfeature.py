"""An OpenFeature provider for Python that asks Orchestrion's flags service.

::

    from openfeature import api
    from orchestrion.services.flags.openfeature import OrchestrionProvider

    provider = OrchestrionProvider("http://127.0.0.1:8000", token=access_token)
    api.set_provider(provider)
    enabled = await api.get_client().get_boolean_value_async("new-editor", False)

Each resolution is ``GET /api/v1/flags/{key}/evaluate`` as the principal of ``token``
(or of the evaluation context's ``token`` attribute, to evaluate as another caller whose
token this process holds), kept ``ttl`` seconds. :meth:`OrchestrionProvider.listen`
joins ``flags.changed`` on the bus in a group of its own, so a change drops the cached
answers of that flag at once in every process that listens, and the provider emits
``PROVIDER_CONFIGURATION_CHANGED`` naming it.

Boolean resolution answers ``enabled``; string resolution answers the variant (the
default when the flag is off). Integer, float and object flags do not exist here: they
resolve to the default with ``TYPE_MISMATCH``.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from orchestrion.kernel.bus import Bus, CloudEvent, Subscription
from orchestrion.kernel.http.tls import client_context
from orchestrion.services.flags.events import TOPIC

T = TypeVar("T")
PATH = "/api/v1/flags/{key}/evaluate"
_Answer = dict[str, Any]


class OrchestrionProvider(AbstractProvider):
    """Resolves boolean and string flags over HTTP, with a small TTL cache that the
    bus's ``flags.changed`` events invalidate."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        ttl: float = 5.0,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
        sync_client: httpx.Client | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.ttl = ttl
        self._client = client or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, verify=client_context()
        )
        self._sync_client = sync_client or httpx.Client(
            base_url=base_url, timeout=timeout, verify=client_context()
        )
        self._owns_clients = (client is None, sync_client is None)
        # (flag key, token digest) -> (monotonic expiry, the service's answer)
        self._cache: dict[tuple[str, str], tuple[float, _Answer]] = {}
        self._subscription: Subscription | None = None

    def get_metadata(self) -> Metadata:
        """The provider's name."""
        return Metadata(name="orchestrion")

    # --- the cache and the bus ---------------------------------------------------------

    def invalidate(self, key: str | None = None) -> None:
        """Forget the cached answers of flag ``key`` (of every flag: None)."""
        if key is None:
            self._cache.clear()
            return
        for cached in [k for k in self._cache if k[0] == key]:
            self._cache.pop(cached, None)

    async def listen(self, bus: Bus) -> Subscription:
        """Drop cached answers on each ``flags.changed`` event from now on. Every provider
        joins a group of its own: each process must see every change."""
        group = f"flags-cache-{uuid.uuid4().hex}"
        self._subscription = await bus.subscribe(TOPIC, group, self._on_change)
        return self._subscription

    async def _on_change(self, event: CloudEvent) -> None:
        data = event.data if isinstance(event.data, Mapping) else {}
        key = data.get("key")
        if not isinstance(key, str):
            return
        self.invalidate(key)
        self.emit_provider_configuration_changed(
            ProviderEventDetails(flags_changed=[key], message=f"flag {data.get('action')}")
        )

    async def aclose(self) -> None:
        """Stop listening and close the HTTP clients this provider made."""
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None
        if self._owns_clients[0]:
            await self._client.aclose()
        if self._owns_clients[1]:
            self._sync_client.close()

    # --- fetching ----------------------------------------------------------------------

    def _token(self, context: EvaluationContext | None) -> str | None:
        if context is not None:
            given = context.attributes.get("token")
            if isinstance(given, str) and given:
                return given
        return self.token

    def _cache_key(self, key: str, token: str | None) -> tuple[str, str]:
        return key, hashlib.sha256((token or "").encode()).hexdigest()

    def _cached(self, cache_key: tuple[str, str]) -> _Answer | None:
        found = self._cache.get(cache_key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def _store(self, cache_key: tuple[str, str], response: httpx.Response) -> _Answer:
        answer: _Answer = {"status": response.status_code}
        if response.status_code == 200:
            answer.update(response.json())
            self._cache[cache_key] = (time.monotonic() + self.ttl, answer)
        else:
            answer["detail"] = _detail(response)
        return answer

    def _fetch(self, key: str, context: EvaluationContext | None) -> _Answer:
        token = self._token(context)
        cache_key = self._cache_key(key, token)
        cached = self._cached(cache_key)
        if cached is not None:
            return {**cached, "cached": True}
        try:
            response = self._sync_client.get(PATH.format(key=key), headers=_auth(token))
        except httpx.HTTPError as exc:
            return {"status": 0, "detail": f"flags service unreachable: {exc}"}
        return self._store(cache_key, response)

    async def _fetch_async(self, key: str, context: EvaluationContext | None) -> _Answer:
        token = self._token(context)
        cache_key = self._cache_key(key, token)
        cached = self._cached(cache_key)
        if cached is not None:
            return {**cached, "cached": True}
        try:
            response = await self._client.get(PATH.format(key=key), headers=_auth(token))
        except httpx.HTTPError as exc:
            return {"status": 0, "detail": f"flags service unreachable: {exc}"}
        return self._store(cache_key, response)

    # --- resolution --------------------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """``enabled`` of the caller's answer."""
        return _boolean(self._fetch(flag_key, evaluation_context), default_value)

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """``enabled`` of the caller's answer, without blocking the loop."""
        return _boolean(await self._fetch_async(flag_key, evaluation_context), default_value)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        """The caller's variant; the default when the flag is off for it."""
        return _string(self._fetch(flag_key, evaluation_context), default_value)

    async def resolve_string_details_async(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        """The caller's variant, without blocking the loop."""
        return _string(await self._fetch_async(flag_key, evaluation_context), default_value)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        """Not a kind of flag Orchestrion has."""
        return _mismatch(default_value, "integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Not a kind of flag Orchestrion has."""
        return _mismatch(default_value, "float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """Not a kind of flag Orchestrion has."""
        return _mismatch(default_value, "object")


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    return str(body.get("detail") or f"HTTP {response.status_code}")


def _error(answer: _Answer, default: T) -> FlagResolutionDetails[T] | None:
    status = answer["status"]
    if status == 200:
        return None
    code = {
        404: ErrorCode.FLAG_NOT_FOUND,
        401: ErrorCode.INVALID_CONTEXT,
        403: ErrorCode.INVALID_CONTEXT,
    }.get(status, ErrorCode.GENERAL)
    return FlagResolutionDetails(
        value=default, reason=Reason.ERROR, error_code=code, error_message=answer["detail"]
    )


def _reason(answer: _Answer) -> str:
    return str(Reason.CACHED) if answer.get("cached") else str(answer["reason"])


def _metadata(answer: _Answer) -> dict[str, bool | int | float | str]:
    return {"version": int(answer["version"])}


def _boolean(answer: _Answer, default: bool) -> FlagResolutionDetails[bool]:
    failed = _error(answer, default)
    if failed is not None:
        return failed
    enabled = bool(answer["enabled"])
    return FlagResolutionDetails(
        value=enabled,
        reason=_reason(answer),
        variant=answer.get("variant") or ("on" if enabled else "off"),
        flag_metadata=_metadata(answer),
    )


def _string(answer: _Answer, default: str) -> FlagResolutionDetails[str]:
    failed = _error(answer, default)
    if failed is not None:
        return failed
    variant = answer.get("variant")
    if not answer["enabled"]:
        return FlagResolutionDetails(
            value=default, reason=str(answer["reason"]), flag_metadata=_metadata(answer)
        )
    if not isinstance(variant, str):
        return _mismatch(default, "string (a boolean flag has no variants)")
    return FlagResolutionDetails(
        value=variant,
        reason=_reason(answer),
        variant=variant,
        flag_metadata=_metadata(answer),
    )


def _mismatch(default: T, kind: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default,
        reason=Reason.ERROR,
        error_code=ErrorCode.TYPE_MISMATCH,
        error_message=f"Orchestrion flags are boolean or string (variants), not {kind}",
    )
