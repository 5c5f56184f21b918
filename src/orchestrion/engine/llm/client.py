"""One model call with retries on 429/5xx (honouring ``Retry-After``) and fallbacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from orchestrion.engine.llm import anthropic, openai
from orchestrion.engine.llm.types import (
    ChatRequest,
    ChatResult,
    ProviderConfig,
    ProviderError,
    TokenSink,
)
from orchestrion.engine.netguard import BlockedDestination, NetGuard
from orchestrion.kernel.observability import tracing

logger = logging.getLogger("orchestrion.engine.llm")
Chat = Callable[
    [httpx.AsyncClient, ProviderConfig, ChatRequest, TokenSink, httpx.Timeout],
    Awaitable[ChatResult],
]


async def _bedrock(
    http: httpx.AsyncClient,
    config: ProviderConfig,
    request: ChatRequest,
    on_token: TokenSink,
    limits: httpx.Timeout,
) -> ChatResult:
    # botocore is imported by the first Bedrock call, not by every process that runs steps.
    from orchestrion.engine.llm import bedrock

    return await bedrock.chat(http, config, request, on_token, limits)


PROTOCOLS: dict[str, Chat] = {
    "openai": openai.chat,
    "anthropic": anthropic.chat,
    "bedrock": _bedrock,
}


_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")


async def guard(config: ProviderConfig, net: NetGuard) -> None:
    """Refuse a tenant's provider URL outside the public internet (settings' are trusted).

    Requests to it then go through a client that dials only what ``net`` checked. Bedrock
    is called through botocore, which resolves the name itself, so a tenant's Bedrock
    endpoint must be an AWS name (or an allow-listed host), never one the tenant's DNS
    could answer differently between the check and the call.
    """
    if config.trusted:
        return
    parts = urlsplit(config.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(f"not an http(s) URL: {config.base_url!r}", retryable=False)
    host = parts.hostname.lower().rstrip(".")
    if config.kind == "bedrock" and not host.endswith(_AWS_SUFFIXES) and host not in net.hosts:
        raise ProviderError(
            f"a tenant's Bedrock provider must be an AWS endpoint (*.amazonaws.com), not {host}; "
            "allow the host with ORCHESTRION_ENGINE__HTTP_ALLOWLIST",
            retryable=False,
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await net.resolve(host, port)
    except BlockedDestination as exc:
        raise ProviderError(str(exc), retryable=False) from None


async def call_model(
    http: httpx.AsyncClient,
    config: ProviderConfig,
    request: ChatRequest,
    on_token: TokenSink,
    *,
    limits: httpx.Timeout,
    max_retries: int,
    max_retry_after: float,
) -> ChatResult:
    """Call once, retrying retryable failures up to ``max_retries`` times.

    With tracing on, the call is a CLIENT span named after the GenAI semantic
    conventions (``chat <model>``, ``gen_ai.*`` attributes, tokens once known).
    """
    with tracing.span(
        f"chat {request.model}",
        kind=tracing.SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": config.kind,
            "gen_ai.provider.name": config.kind,
            "gen_ai.request.model": request.model,
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.max_tokens": request.max_tokens,
            "orchestrion.llm.provider": config.name,
        },
    ) as current:
        try:
            result = await _call_model(
                http, config, request, on_token, limits=limits,
                max_retries=max_retries, max_retry_after=max_retry_after,
            )  # fmt: skip
        except ProviderError as exc:
            tracing.set_attributes({"error.type": type(exc).__name__}, current)
            tracing.fail(current, str(exc))
            raise
        tracing.set_attributes(
            {
                "gen_ai.response.model": result.model,
                "gen_ai.usage.input_tokens": result.input_tokens,
                "gen_ai.usage.output_tokens": result.output_tokens,
                "gen_ai.response.finish_reasons": (
                    [result.finish_reason] if result.finish_reason else None
                ),
            },
            current,
        )
        return result


async def _call_model(
    http: httpx.AsyncClient,
    config: ProviderConfig,
    request: ChatRequest,
    on_token: TokenSink,
    *,
    limits: httpx.Timeout,
    max_retries: int,
    max_retry_after: float,
) -> ChatResult:
    protocol = PROTOCOLS.get(config.kind)
    if protocol is None:
        raise ProviderError(f"provider kind {config.kind!r} is not supported here", retryable=False)
    attempt = 0
    while True:
        try:
            return await protocol(http, config, request, on_token, limits)
        except BlockedDestination as exc:
            error = ProviderError(str(exc), retryable=False)
        except httpx.TimeoutException:
            error = ProviderError(f"{config.name} timed out")
        except httpx.HTTPError as exc:
            error = ProviderError(f"{config.name} failed: {type(exc).__name__}: {exc}")
        except ProviderError as exc:
            error = exc
        if not error.retryable or attempt >= max_retries:
            raise error
        wait = error.retry_after if error.retry_after is not None else min(8.0, 0.5 * 2**attempt)
        if wait > max_retry_after:
            raise error
        attempt += 1
        logger.info("retrying %s in %.1fs: %s", config.name, wait, error)
        await asyncio.sleep(wait)
