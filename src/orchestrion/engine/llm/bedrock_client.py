"""botocore ``bedrock-runtime`` clients for Bedrock providers, and their errors.

Credentials come from the provider's ``api_key``: ``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` (or
``...:SESSION_TOKEN``) signs with SigV4; a value without a colon is a Bedrock API key,
sent as ``Authorization: Bearer``. Without a key a platform provider uses botocore's own
chain (environment, profile, instance role); a tenant's provider must bring one (checked
by the caller), or it would spend the platform's AWS account. Clients are cached per
endpoint, region and credentials: building one loads the service model.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import botocore
import botocore.session
import httpx
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from orchestrion.engine.llm.sse import retry_after
from orchestrion.engine.llm.types import ProviderConfig, ProviderError

DEFAULT_REGION = "us-east-1"
_HOST_REGION = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")
#: Error codes (HTTP errors and in-stream exceptions, compared lower-case) worth a retry.
_RETRYABLE = {
    "throttlingexception",
    "toomanyrequestsexception",
    "serviceunavailableexception",
    "internalserverexception",
    "modelnotreadyexception",
    "modelstreamerrorexception",
    "modeltimeoutexception",
}
_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_MAX_CLIENTS = 32


def region_of(config: ProviderConfig) -> str:
    """The configured region, else the one in a ``bedrock-runtime.<region>...`` host."""
    if config.region:
        return config.region
    host = httpx.URL(config.base_url).host
    found = _HOST_REGION.match(host)
    return found.group(1) if found else DEFAULT_REGION


def client_for(config: ProviderConfig, connect: float | None, read: float | None) -> Any:
    """A cached ``bedrock-runtime`` client for this provider (blocking: call in a thread)."""
    region = region_of(config)
    key = (config.base_url, region, config.api_key, connect, read)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            return client
        if len(_CLIENTS) >= _MAX_CLIENTS:
            for stale in _CLIENTS.values():
                stale.close()
            _CLIENTS.clear()
        options: dict[str, Any] = {
            "connect_timeout": connect or 60,
            "read_timeout": read or 60,
            # Retries are ours (call_model), counted like every other provider's.
            "retries": {"mode": "standard", "total_max_attempts": 1},
        }
        credentials: dict[str, Any] = {}
        secret = config.api_key or ""
        bearer: str | None = None
        if ":" in secret:
            parts = secret.split(":", 2)
            credentials = {"aws_access_key_id": parts[0], "aws_secret_access_key": parts[1]}
            if len(parts) == 3:
                credentials["aws_session_token"] = parts[2]
            # Explicit: an AWS_BEARER_TOKEN_BEDROCK in the environment must not win.
            options["signature_version"] = "v4"
        elif secret:
            bearer = secret
            options["signature_version"] = botocore.UNSIGNED
        session = botocore.session.Session()
        client = session.create_client(
            "bedrock-runtime",
            region_name=region,
            endpoint_url=config.base_url.rstrip("/"),
            config=Config(**options),
            **credentials,
        )
        if bearer is not None:
            header = f"Bearer {bearer}"

            def authorize(request: Any, **_: Any) -> None:
                request.headers["Authorization"] = header

            client.meta.events.register("before-send.bedrock-runtime", authorize)
        _CLIENTS[key] = client
        return client


def provider_error(exc: Exception, provider: str) -> ProviderError:
    """A ProviderError for what botocore raised: throttling, 408/409/429 and 5xx may be retried."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error") or {}
        meta = exc.response.get("ResponseMetadata") or {}
        code = str(error.get("Code") or "")
        status = meta.get("HTTPStatusCode")
        headers = meta.get("HTTPHeaders") or {}
        retryable = code.lower() in _RETRYABLE or (
            isinstance(status, int) and (status in (408, 409, 429) or status >= 500)
        )
        return ProviderError(
            f"{provider} answered {status or 'an error'}: {code}: {error.get('Message', '')}",
            status=status if isinstance(status, int) else None,
            retry_after=retry_after(headers.get("retry-after")),
            retryable=retryable,
        )
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return ProviderError(f"{provider} timed out")
    if isinstance(exc, NoCredentialsError | ParamValidationError):
        return ProviderError(f"{provider}: {exc}", retryable=False)
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"{provider} failed: {type(exc).__name__}: {exc}")
    return ProviderError(f"{provider} failed: {type(exc).__name__}: {exc}", retryable=False)


def not_streamable(exc: Exception) -> bool:
    """Some models refuse ConverseStream (e.g. with tools); Converse still answers them."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error") or {}
    message = str(error.get("Message") or "").lower()
    return error.get("Code") == "ValidationException" and "stream" in message
