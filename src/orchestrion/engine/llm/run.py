"""One step attempt's model calls: provider choice, fallbacks, budgets and the meter."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from orchestrion.engine.llm.backend import LlmBackend
from orchestrion.engine.llm.client import call_model, guard
from orchestrion.engine.llm.types import ChatRequest, ChatResult, ProviderError
from orchestrion.engine.netguard import NetGuard, guarded_client
from orchestrion.engine.outcomes import ModelUsage, StepCall
from orchestrion.engine.requirements import HTTP, HttpAccess


@dataclass(frozen=True)
class Candidate:
    """A provider and model to try, in order: the step's own, then its fallbacks."""

    provider: str | None
    model: str


def candidates(spec: dict[str, Any]) -> list[Candidate]:
    """The step's model followed by ``fallback`` entries (a model name or {provider, model})."""
    found = [Candidate(spec.get("provider"), str(spec["model"]))]
    for entry in spec.get("fallback") or []:
        if isinstance(entry, str):
            found.append(Candidate(spec.get("provider"), entry))
        elif isinstance(entry, dict) and entry.get("model"):
            found.append(
                Candidate(entry.get("provider", spec.get("provider")), str(entry["model"]))
            )
    return found


@dataclass
class Meter:
    """Usage of one attempt, summed by (provider, model)."""

    entries: dict[tuple[str, str], ModelUsage] = field(default_factory=dict)

    def add(self, entry: ModelUsage) -> None:
        """Add one call's usage."""
        key = (entry.provider, entry.model)
        old = self.entries.get(key)
        if old is not None:
            entry = ModelUsage(
                provider=entry.provider,
                model=entry.model,
                input_tokens=old.input_tokens + entry.input_tokens,
                output_tokens=old.output_tokens + entry.output_tokens,
                cost_usd=round(old.cost_usd + entry.cost_usd, 9),
                estimated=old.estimated or entry.estimated,
            )
        self.entries[key] = entry

    @property
    def usage(self) -> tuple[ModelUsage, ...]:
        """The entries, for the outcome."""
        return tuple(self.entries.values())

    def summary(self) -> dict[str, Any]:
        """``{"input_tokens", "output_tokens", "cost_usd", "estimated"}`` of the attempt."""
        entries = self.entries.values()
        return {
            "input_tokens": sum(e.input_tokens for e in entries),
            "output_tokens": sum(e.output_tokens for e in entries),
            "cost_usd": round(sum(e.cost_usd for e in entries), 9),
            "estimated": any(e.estimated for e in entries),
        }


def prompt_text(request: ChatRequest) -> str:
    """Everything sent as input, for counting tokens a provider did not report."""
    parts = [request.system or ""]
    for message in request.messages:
        parts.append(str(message.get("content") or ""))
        if message.get("tool_calls"):
            parts.append(json.dumps(message["tool_calls"]))
    if request.tools:
        parts.append(json.dumps([t.parameters for t in request.tools]))
    if request.response_schema:
        parts.append(json.dumps(request.response_schema))
    return "\n".join(parts)


class ModelRunner:
    """Calls models for one attempt, metering each call and checking budgets first.

    ``meter`` sums every call the step's answer rests on, those replayed from its
    journal included (the output's ``usage``); :attr:`unrecorded` is what the outcome
    carries: this attempt's calls that no journal part has recorded (and so counted).
    """

    def __init__(self, call: StepCall, backend: LlmBackend, spec: dict[str, Any]) -> None:
        self.call = call
        self.backend = backend
        self.candidates = candidates(spec)
        self.meter = Meter()
        self.provider_name = ""
        self._unrecorded: list[ModelUsage] = []

    async def _token(self, text: str) -> None:
        await self.backend.publish_token(self.call, text)

    @property
    def unrecorded(self) -> tuple[ModelUsage, ...]:
        """This attempt's usage not yet counted with a journal part, for the outcome."""
        meter = Meter()
        for entry in self._unrecorded:
            meter.add(entry)
        return meter.usage

    def recorded(self, usage: ModelUsage) -> None:
        """``usage`` (one call of this attempt) was recorded, and counted, with a journal
        part: the outcome leaves it out."""
        self._unrecorded.remove(usage)

    def replayed(self, usage: Iterable[ModelUsage]) -> None:
        """A journal part recorded in an earlier attempt is reused: its usage joins the
        output's summary, and is not counted again."""
        for entry in usage:
            self.meter.add(entry)

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Try each candidate in turn; the first answer, or the last error (ProviderError).

        Raises BudgetExceeded before a call that would cross a budget.
        """
        result, _ = await self.answer(request)
        return result

    async def answer(self, request: ChatRequest) -> tuple[ChatResult, ModelUsage]:
        """:meth:`complete`, with what that call cost."""
        backend = self.backend
        last: ProviderError | None = None
        for candidate in self.candidates:
            config = await backend.provider(self.call.tenant_id, candidate.provider)
            if config is None:
                last = ProviderError(
                    f"no LLM provider named {candidate.provider!r}"
                    if candidate.provider
                    else "no LLM provider is configured",
                    retryable=False,
                )
                continue
            request.model = candidate.model
            prompt = prompt_text(request)
            most = request.max_tokens or backend.assumed_output_tokens
            estimate = backend.prices.cost(candidate.model, backend.counter.count(prompt), most)
            # Reserved before the call and settled after, so parallel steps on any
            # worker count each other's calls in flight.
            reservation = await backend.reserve_budget(self.call, estimate)
            try:
                access = self.call.resources.get(HTTP)
                await guard(config, access.guard if access is not None else _public())
                result = await call_model(
                    backend.http if config.trusted else _guarded(access),
                    config,
                    request,
                    self._token,
                    limits=backend.timeout,
                    max_retries=backend.max_retries,
                    max_retry_after=backend.max_retry_after,
                )
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await backend.release_budget(reservation)
                if not isinstance(exc, ProviderError):
                    raise
                last = exc
                continue
            finally:
                # Batched tokens leave before the step's outcome is recorded.
                backend.flush_tokens()
            self.provider_name = config.name
            used = self._meter(config.name, candidate.model, prompt, result)
            # Unsettled, the estimate stays counted until it expires: never less than spent.
            with contextlib.suppress(Exception):
                await backend.settle_budget(reservation, used.cost_usd)
            return result, used
        assert last is not None
        raise last

    def _meter(self, provider: str, model: str, prompt: str, result: ChatResult) -> ModelUsage:
        counter = self.backend.counter
        estimated = False
        if not result.reported:
            answer = result.text
            if result.tool_calls:
                answer += json.dumps([c.as_dict() for c in result.tool_calls])
            result.input_tokens = counter.count(prompt)
            result.output_tokens = counter.count(answer) if result.text or result.tool_calls else 0
            estimated = not counter.exact
        priced = result.model if self.backend.prices.price(result.model) else model
        usage = ModelUsage(
            provider=provider,
            model=priced,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=self.backend.prices.cost(priced, result.input_tokens, result.output_tokens),
            estimated=estimated,
        )
        self.meter.add(usage)
        self._unrecorded.append(usage)
        return usage


@functools.cache
def _public() -> NetGuard:
    return NetGuard()


@functools.cache
def _public_client() -> httpx.AsyncClient:
    # Keeps no connection between requests, so it needs no closing.
    return guarded_client(_public())


def _guarded(access: HttpAccess | None) -> httpx.AsyncClient:
    """The client of a tenant's provider: it dials only the addresses it checked."""
    return access.guarded if access is not None else _public_client()
