"""Root settings, built from one section per part of the platform.

Every value can come from the environment with the ``ORCHESTRION_`` prefix, nested
sections joined by ``__`` (``ORCHESTRION_DATABASE__URL``), or from a ``.env`` file.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrion.kernel.mcp_config import McpServerConfig

if TYPE_CHECKING:
    from orchestrion.kernel.auth.revocation import Revocations
    from orchestrion.kernel.db.engine import Database

_DEV_SECRET = "orchestrion-development-secret-change-me"  # noqa: S105 - refused outside development


class DatabaseSettings(BaseModel):
    """Where the platform keeps its data."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; empty means SQLite in the data directory. "
        "Example: postgresql+asyncpg://user@127.0.0.1:5432/orchestrion",
    )
    echo: bool = Field(default=False, description="Log every SQL statement.")
    pool_size: int = Field(
        default=10, ge=1, description="Connections kept per process (PostgreSQL)."
    )
    busy_timeout_ms: int = Field(
        default=10000,
        ge=0,
        description="SQLite lock wait before failing (a request then answers 503, Retry-After).",
    )


#: OWASP's argon2id floor (19 MiB, with 2 passes): production refuses less.
_OWASP_MEMORY_KIB = 19 * 1024


class PasswordHashingSettings(BaseModel):
    """argon2id costs of new password hashes (a stored hash keeps the costs it was made
    with, so changing these never locks anyone out). The defaults are RFC 9106's
    low-memory profile; OWASP's floor is 19 MiB, 2 passes, 1 lane."""

    time_cost: int = Field(default=3, ge=1, le=20, description="Passes over the memory.")
    memory_kib: int = Field(
        default=65536, ge=8, le=4 * 1024 * 1024, description="Memory per hash, in KiB."
    )
    parallelism: int = Field(default=4, ge=1, le=16, description="Lanes (threads) per hash.")


_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class OidcProviderSettings(BaseModel):
    """An external OpenID Connect provider users may sign in with (docs/identity.md)."""

    issuer: str = Field(
        description="The provider's issuer URL; its endpoints come from "
        "`<issuer>/.well-known/openid-configuration`."
    )
    client_id: str = Field(description="This platform's client id at the provider.")
    client_secret: SecretStr = Field(description="This platform's client secret at the provider.")
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        description="Scopes asked for (`openid` is always included).",
    )
    tenant_id: str | None = Field(
        default=None,
        description="Tenant (id or name) whose users sign in here and where new users are "
        "created (default: the default tenant).",
    )
    default_role: str = Field(default="viewer", description="Role of users created at sign-in.")
    display_name: str | None = Field(
        default=None, description="Name on the console's button (default: the provider's name)."
    )

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(["openid", *value]))


class AuthSettings(BaseModel):
    """Tokens, passwords and throttling."""

    issuer: str = Field(default="orchestrion", description="`iss` claim of issued tokens.")
    audience: str = Field(default="orchestrion-api", description="`aud` claim of access tokens.")
    access_token_ttl_seconds: int = Field(default=900, ge=2, description="Access token lifetime.")
    refresh_token_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=60, description="Refresh token lifetime."
    )
    signing_key_rotation_days: int = Field(
        default=30,
        ge=1,
        description="Age after which a new signing key is made (old ones stay in JWKS).",
    )
    signing_key_publish_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a new signing key is published in JWKS before it signs, so "
        "every gateway can verify its first token (keep above the gateway's JWKS refresh "
        "interval).",
    )
    login_max_attempts: int = Field(
        default=10, ge=1, description="Failed logins allowed per account and per IP in the window."
    )
    login_window_seconds: int = Field(default=900, ge=1, description="Login throttling window.")
    password_hashing: PasswordHashingSettings = Field(
        default_factory=PasswordHashingSettings,
        description="argon2id costs of new password hashes.",
    )
    password_min_length: int = Field(
        default=12,
        ge=8,
        le=128,
        description="Fewest characters of a new password (creation, change, bootstrap admin); "
        "common passwords and ones built on the email's name are refused at any length.",
    )
    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long the gateway trusts an API key lookup (a revocation or "
        "rotation drops it at once).",
    )
    revocation_key: str = Field(
        default="orn:auth:revoked",
        description="With Redis: the sorted set and pub/sub channel that carry revocation "
        "notices to every gateway; deployments sharing one Redis need different names.",
    )
    oidc_providers: dict[str, OidcProviderSettings] = Field(
        default_factory=dict,
        description='OpenID Connect providers by name (JSON: `{"<name>": {"issuer", '
        '"client_id", "client_secret", "scopes"?, "tenant_id"?, "default_role"?}}`); names are '
        "lower-case letters, digits, `-` and `_`.",
    )
    sso_redirect_uris: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Frontend URLs single sign-on may return to (exact match; comma-separated "
        "or a JSON list), e.g. the console's `http://127.0.0.1:8000/sign-in`.",
    )
    sso_state_ttl_seconds: int = Field(
        default=600, ge=30, description="Time a user has to finish signing in at the provider."
    )
    sso_code_ttl_seconds: int = Field(
        default=60,
        ge=5,
        le=600,
        description="Lifetime of the one-time code handed to the frontend after sign-in.",
    )
    sso_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for an answer from a provider."
    )
    sso_jwks_cooldown_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Least time between refetches of a provider's keys caused by an unknown "
        "key id (a rotation).",
    )

    audit_retention_days: int = Field(
        default=0,
        ge=0,
        description="Audit lines older than this many days are pruned (each tenant's chain "
        "keeps the pruned-to hash as its anchor, so what is kept still verifies); 0 keeps "
        "every line.",
    )
    audit_prune_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the auth service prunes old audit lines."
    )
    hmac_window_seconds: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="Signed requests (`Orchestrion-HMAC`): how far a request's timestamp may "
        "be from the server's clock, either way; a signature is refused when seen again "
        "within it.",
    )
    personal_data_peers: list[str] = Field(
        default_factory=lambda: ["workflows", "templates", "notifications", "flags", "content"],
        description="Services asked for a user's records when their personal data is exported "
        "(each must answer, or the export fails).",
    )

    @field_validator("oidc_providers")
    @classmethod
    def _provider_names(
        cls, value: dict[str, OidcProviderSettings]
    ) -> dict[str, OidcProviderSettings]:
        bad = [name for name in value if not _PROVIDER_NAME.match(name)]
        if bad:
            raise ValueError(
                f"provider names must be lower-case letters, digits, '-' or '_': {bad}"
            )
        return value

    @field_validator("sso_redirect_uris", mode="before")
    @classmethod
    def _uri_list(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class GatewaySettings(BaseModel):
    """The single entry point."""

    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty disables CORS headers."
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1, description="Largest request body.")
    jwks_cache_seconds: float = Field(default=300.0, ge=0, description="How long JWKS is cached.")
    jwks_min_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Least time between JWKS fetches triggered by unknown key ids "
        "(bounds the load forged tokens can cause).",
    )
    rate_limit: str = Field(
        default="600/minute",
        description="Default rate limit per caller (user, API key, or client IP when anonymous), "
        "in `limits` notation such as `100/minute` or `10/second;1000/hour`; empty disables it. "
        "Routes may set their own.",
    )
    rate_limit_strategy: Literal["sliding", "token_bucket"] = Field(
        default="sliding",
        description="`sliding`: an exact moving window; `token_bucket`: bursts up to the limit, "
        "refilled evenly over the period.",
    )
    login_rate_limit: str = Field(
        default="10/minute",
        description="Limit on `POST /api/v1/auth/login` per client IP; empty disables it.",
    )
    rate_limit_prefix: str = Field(
        default="orn:rl:", description="Prefix of rate-limit keys in Redis (`redis.url`)."
    )
    policy_timeout_seconds: float = Field(
        default=0.5,
        gt=0,
        description="Longest wait on Redis for a rate-limit or cache operation; past it the "
        "request goes on without the policy (fail open).",
    )
    cache_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        description="Largest response body the gateway caches; bigger ones stream through.",
    )
    cache_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Memory the in-process response cache may use (without Redis).",
    )
    cache_stale_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How long a stale response with an ETag is kept for revalidation.",
    )
    cache_prefix: str = Field(
        default="orn:cache:", description="Prefix of response-cache keys in Redis."
    )

    @field_validator("rate_limit", "login_rate_limit")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit ({exc}); try e.g. 100/minute") from exc
        return value.strip()

    config: Path | None = Field(
        default=None,
        description="A YAML file of upstreams and routes (`orchestrion gateway --config`); "
        "re-read when it changes.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or CIDRs of proxies in front of the gateway whose "
        "X-Forwarded-For is believed (comma-separated).",
    )
    ip_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="If set, only clients in these addresses or CIDRs are served "
        "(comma-separated).",
    )
    ip_deny: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Clients in these addresses or CIDRs are refused."
    )
    max_concurrent_per_client: int = Field(
        default=256, ge=0, description="Requests in flight per client address (0: no cap)."
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Time a client has to send a request's headers (from its first byte, or "
        "from connecting); past it the gateway answers 408 and closes (0: no limit).",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request line and headers; past it the gateway answers 431 and closes.",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Time a client has to send a request body once its headers are in; past "
        "it the gateway answers 408 and closes (0: no limit).",
    )
    max_connections_per_ip: int = Field(
        default=256,
        ge=0,
        description="Open connections per client address (trusted proxies exempt); past it "
        "a new connection is answered 429 and closed (0: no cap).",
    )
    canary_flag_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a canary's flag answer for one caller is reused; a change of "
        "the flag (`flags.changed` on the bus) drops its answers at once.",
    )
    registry: bool = Field(
        default=True,
        description="With Redis configured: services started by `orchestrion serve` register "
        "there and the gateway routes to the instances it finds.",
    )
    registry_prefix: str = Field(default="orn:registry:", description="Registry key prefix.")
    registry_ttl_seconds: float = Field(
        default=10.0, gt=0, description="An instance that stops heartbeating is gone after this."
    )
    admin_path: str = Field(
        default="/admin", description="Where the admin API lives (platform:admin only)."
    )
    fast_lane: bool = Field(
        default=True,
        description="Serve plain proxied requests (no body, a route without cache, rewrite or "
        "canary, to an HTTP upstream; CORS, tracing and the access log off) at the HTTP "
        "protocol, without uvicorn's ASGI request cycle: the same answers and metrics, less "
        "CPU per request (gateway/lane.py). Everything else takes the ASGI path either way.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Gateway processes on the one port (`orchestrion gateway --workers`; "
        "SO_REUSEPORT); more than 1 needs `redis.url` (rate limits and admin changes shared).",
    )

    @field_validator("trusted_proxies", "ip_allow", "ip_deny", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class EngineSettings(BaseModel):
    """The workflow engine and its workers."""

    http_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts or CIDRs `http` steps may reach although private or loopback "
        "(comma-separated in the environment).",
    )
    http_max_response_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1,
        description="Largest response body an `http` step reads (after decompression); "
        "past it the step fails.",
    )
    env_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Environment variables expressions may read as `env.<NAME>`.",
    )
    embedded_workers: bool = Field(
        default=True,
        description="Run workers inside the workflows service (the embedded shape); "
        "false when `orchestrion worker` processes do the work.",
    )
    worker_concurrency: int = Field(
        default=16, ge=1, le=1000, description="Tasks one worker runs at a time."
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a claimed task is a worker's before others retry it.",
    )
    poll_seconds: float = Field(
        default=1.0, gt=0, description="Longest sleep of an idle worker between checks."
    )
    max_items: int = Field(
        default=10_000,
        ge=1,
        description="Most items a `for_each` step fans out over; a longer list fails the step.",
    )
    max_child_executions: int = Field(
        default=100,
        ge=0,
        description="Most child executions (`sub_workflow`, workflow tools) one root "
        "execution may start, counting every level.",
    )
    max_child_depth: int = Field(
        default=8,
        ge=0,
        le=15,
        description="How deep child executions may nest under a root (at most 15).",
    )
    max_active_executions: int = Field(
        default=1000,
        ge=1,
        description="Most unfinished root executions a tenant may have; starting one more "
        "answers 429.",
    )
    max_output_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest step output (serialised JSON bytes); a larger one fails the step.",
    )
    max_input_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest execution inputs (serialised JSON bytes); larger answer 413.",
    )
    max_task_attempts: int = Field(
        default=25,
        ge=1,
        description="Times a queued task is handed to a worker before it is dead-lettered "
        "(a task that crashes its worker every time).",
    )

    @field_validator("http_allowlist", "env_allowlist", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class BusSettings(BaseModel):
    """The event bus joining the services (see docs/bus.md)."""

    url: str = Field(
        default="memory://",
        description="memory:// (in-process), redis://, amqp://, nats:// or kafka:// URL.",
    )


class TlsSettings(BaseModel):
    """Mutual TLS between the gateway, the services and the workers (the distributed
    shape). Unset, they talk plain HTTP; `orchestrion certs dev` makes a local CA and a
    certificate to try it with (docs/identity.md)."""

    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authority that signs every service's and "
        "caller's certificate: the only one trusted on internal calls.",
    )
    cert_file: Path | None = Field(
        default=None,
        description="PEM certificate `orchestrion serve` serves HTTPS with, and that the "
        "gateway, services and workers present as clients (unless `client_cert_file`).",
    )
    key_file: Path | None = Field(default=None, description="Private key of `cert_file` (PEM).")
    client_cert_file: Path | None = Field(
        default=None,
        description="Another certificate to present as a client (default: `cert_file`).",
    )
    client_key_file: Path | None = Field(
        default=None, description="Private key of `client_cert_file` (default: `key_file`)."
    )
    require_client_cert: bool = Field(
        default=True,
        description="`orchestrion serve` refuses a connection whose client presents no "
        "certificate signed by `ca_file` (false: HTTPS only, callers not checked).",
    )

    @model_validator(mode="after")
    def _complete(self) -> TlsSettings:
        given = [self.ca_file, self.cert_file, self.key_file]
        if any(given) and not all(given):
            raise ValueError(
                "ORCHESTRION_TLS__CA_FILE, __CERT_FILE and __KEY_FILE go together: set all "
                "three for mutual TLS, or none for plain HTTP"
            )
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("ORCHESTRION_TLS__CLIENT_CERT_FILE and __CLIENT_KEY_FILE go together")
        return self

    @property
    def enabled(self) -> bool:
        """Whether internal calls use mutual TLS."""
        return self.ca_file is not None

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``: how services are addressed."""
        return "https" if self.enabled else "http"

    def client_context(self) -> ssl.SSLContext:
        """The process's context for calls to services: trusting ``ca_file`` only and
        presenting the client certificate; without TLS, the usual public context."""
        from orchestrion.kernel.http.tls import client_context, internal_context

        if self.ca_file is None or self.cert_file is None or self.key_file is None:
            return client_context()
        return internal_context(
            ca_file=str(self.ca_file),
            cert_file=str(self.client_cert_file or self.cert_file),
            key_file=str(self.client_key_file or self.key_file),
        )

    def server_options(self) -> dict[str, Any]:
        """uvicorn's ``ssl_*`` options for a service (empty without TLS)."""
        if not self.enabled:
            return {}
        return {
            "ssl_certfile": str(self.cert_file),
            "ssl_keyfile": str(self.key_file),
            "ssl_ca_certs": str(self.ca_file),
            "ssl_cert_reqs": ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_NONE,
        }


class RedisSettings(BaseModel):
    """The shared Redis of the distributed shape."""

    url: str | None = Field(
        default=None,
        description="redis://host:port/db for rate limits, presence and realtime fan-out; "
        "empty keeps that state in each process (embedded shape).",
    )


class RealtimeSettings(BaseModel):
    """Limits, history and the shared backend of the realtime service."""

    redis_url: str | None = Field(
        default=None,
        description="Redis for history, sequence numbers, presence and fan-out across "
        "instances; empty keeps everything in this process (embedded shape).",
    )
    redis_prefix: str = Field(default="orn:rt:", description="Prefix of every Redis key.")
    bus_group: str = Field(
        default="realtime",
        description="Consumer group realtime reads execution events with; deployments sharing "
        "one broker need different names.",
    )
    history_size: int = Field(
        default=1000, ge=0, description="Messages kept per channel for resume after reconnect."
    )
    history_ttl_seconds: int = Field(
        default=24 * 3600, ge=1, description="An idle channel's history and seq expire after this."
    )
    max_channels: int = Field(
        default=10_000, ge=1, description="Channel histories kept in memory (embedded shape)."
    )
    max_connections: int = Field(
        default=20_000, ge=1, description="Open sockets per process; more are closed with 1013."
    )
    max_connections_per_user: int = Field(
        default=100, ge=1, description="Open sockets per user per process; more get 4429."
    )
    max_subscriptions: int = Field(default=200, ge=1, description="Channels per connection.")
    max_frame_bytes: int = Field(
        default=64 * 1024, ge=256, description="Largest client frame; larger ones get an error."
    )
    max_message_bytes: int = Field(
        default=32 * 1024,
        ge=1,
        description="Largest `data` of a client publish, in bytes of compact JSON; larger ones "
        "get the error `message_too_large`.",
    )
    publish_rate: float = Field(
        default=20.0,
        gt=0,
        description="Publish and presence frames per second a connection may sustain (token "
        "bucket); more get the error `rate_limited`.",
    )
    publish_burst: int = Field(
        default=40, ge=1, description="Frames a connection may send at once above its rate."
    )
    user_publish_rate: float = Field(
        default=50.0,
        gt=0,
        description="Publish and presence frames per second a user may sustain across all "
        "their connections to one instance.",
    )
    user_publish_burst: int = Field(
        default=100, ge=1, description="Frames a user may send at once above their rate."
    )
    max_rate_violations: int = Field(
        default=100,
        ge=1,
        description="Rate-limited frames a connection may send before it is closed with 1008.",
    )
    max_tenant_history_messages: int = Field(
        default=50_000,
        ge=1,
        description="Stored messages per tenant across its channels; the oldest are trimmed.",
    )
    max_tenant_history_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="Bytes of stored messages per tenant across its channels; the oldest are "
        "trimmed.",
    )
    send_queue_size: int = Field(
        default=1000,
        ge=1,
        description="Frames queued per connection; a client that falls further behind is "
        "disconnected with 4408 (slow consumer).",
    )
    auth_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Time an unauthenticated socket has to send its auth frame."
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A client silent for this long (no frame, not even a ping) is closed with "
        "4410 and leaves presence.",
    )
    presence_ttl_seconds: float = Field(
        default=45.0, gt=0, description="Presence of a crashed instance disappears after this."
    )
    close_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Time a closing socket gets to flush its close frame."
    )
    tune_gc: bool | None = Field(
        default=None,
        description="Freeze start-up objects out of the garbage collector and collect less "
        "often (process-wide; avoids 100+ ms pauses under fan-out). Empty: on, except "
        "when the environment is `test`.",
    )
    peers: dict[str, str] = Field(
        default_factory=dict,
        description="Base URLs of other services (auth, workflows) for a standalone instance; "
        "they override in-process peers.",
    )


class LlmProviderSettings(BaseModel):
    """One LLM provider the platform trusts (its base URL is not checked against private ranges)."""

    kind: Literal["openai", "anthropic", "bedrock"] = Field(
        description="Wire protocol: OpenAI-compatible chat completions, Anthropic Messages "
        "or AWS Bedrock Converse."
    )
    base_url: str = Field(
        description="API base URL, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com`."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The provider's API key (bedrock: `ACCESS_KEY_ID:SECRET_ACCESS_KEY"
        "[:SESSION_TOKEN]` or a Bedrock API key; none: botocore's default credential chain).",
    )
    region: str | None = Field(
        default=None,
        description="AWS region of a bedrock provider (default: from a "
        "`bedrock-runtime.<region>.amazonaws.com` base_url, else us-east-1).",
    )


class LlmSettings(BaseModel):
    """LLM steps: providers, prices, timeouts and retries."""

    providers: dict[str, LlmProviderSettings] = Field(
        default_factory=dict,
        description='Providers by name (JSON: `{"<name>": {"kind", "base_url", "api_key"}}`).',
    )
    pricing: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='USD per million tokens by model (JSON: `{"<model>": {"input", "output"}}`), '
        "over the built-in defaults.",
    )
    default_provider: str | None = Field(
        default=None, description="Provider of `llm` steps that name none (default: the first)."
    )
    timeout_seconds: float = Field(
        default=120.0, gt=0, description="Longest wait for a whole provider call."
    )
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait to connect to a provider."
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a call answered 429 or 5xx (per model)."
    )
    max_retry_after_seconds: float = Field(
        default=30.0, ge=0, description="Longest `Retry-After` honoured before giving up."
    )
    assumed_output_tokens: int = Field(
        default=256,
        ge=0,
        description="Output tokens a budget check assumes for a call without `max_tokens`.",
    )
    tiktoken_file: Path | None = Field(
        default=None,
        description="A local `.tiktoken` BPE file to count tokens a provider did not report "
        "(needs the optional `tiktoken` package); without it they are estimated.",
    )
    token_flush_seconds: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="With a broker: how long a step's token chunks gather before one bus "
        "event carries them (also sent at once when a model call ends).",
    )
    token_flush_chars: int = Field(
        default=1024, ge=1, description="With a broker: pending characters that flush at once."
    )
    token_bus_group: str = Field(
        default="workflows-tokens",
        description="Prefix of the consumer groups the workflows service reads worker "
        "processes' tokens with, for its SSE streams: each instance reads in its own group "
        "`<prefix>-<instance id>` (removed when it stops), so every instance gets every token; "
        "deployments sharing one broker need different prefixes.",
    )


class McpSettings(BaseModel):
    """MCP: the servers `mcp` steps may call, and the platform's own MCP endpoint (docs/mcp.md)."""

    servers: dict[str, McpServerConfig] = Field(
        default_factory=dict,
        description='Servers by name, as JSON: {"<name>": {"command": [...], "env"?: {...}}} '
        'or {"<name>": {"url": "...", "headers"?: {...}}}.',
    )
    call_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Default time an `mcp` step waits for a tool's answer."
    )
    connect_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Time to spawn or reach a server and finish the handshake."
    )
    max_sessions: int = Field(
        default=64, ge=1, description="Client sessions kept open per process (least used close)."
    )
    idle_seconds: float = Field(
        default=300.0, gt=0, description="An unused client session is closed after this."
    )
    tenant_servers_max: int = Field(
        default=50, ge=0, description="MCP servers one tenant may register."
    )
    tool_wait_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a call to a workflow tool on `/mcp` waits for the execution to "
        "end before answering with its id.",
    )


class GrpcSettings(BaseModel):
    """The workflows service's internal gRPC server (docs/grpc.md)."""

    enabled: bool = Field(
        default=True, description="Serve gRPC beside HTTP (`up` and `serve workflows`)."
    )
    host: str | None = Field(
        default=None, description="Address to bind; empty: the HTTP address (ORCHESTRION_HOST)."
    )
    port: int = Field(
        default=50051, ge=0, le=65535, description="Port to bind; 0: any free port (logged)."
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain; with `tls_key_file`, serve TLS only."
    )
    tls_key_file: Path | None = Field(
        default=None, description="PEM private key of `tls_cert_file`."
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> GrpcSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both grpc.tls_cert_file and grpc.tls_key_file, or neither")
        return self


class ObservabilitySettings(BaseModel):
    """Logs, metrics and traces."""

    log_level: str = Field(default="INFO", description="Root log level.")
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto",
        description="`json`: one JSON object per line; `console`: time, level, logger, message "
        "and key=value extras, for people; `auto`: console when stderr is a terminal, else json.",
    )
    access_log: bool = Field(
        default=True, description="One log line per request at the gateway (false: none)."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, `/metrics` answers only requests with "
        "`Authorization: Bearer <token>` (401 otherwise); empty: open to anyone who reaches it.",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port `orchestrion worker` serves `/metrics` on (at `host`), for "
        "Prometheus to scrape; 0: none.",
    )

    @model_validator(mode="before")
    @classmethod
    def _log_json(cls, data: object) -> object:
        # `log_json` (true/false) came before `log_format`; alone, it still decides.
        if isinstance(data, dict) and "log_json" in data and "log_format" not in data:
            from pydantic import TypeAdapter

            as_json = TypeAdapter(bool).validate_python(data["log_json"])
            return {**data, "log_format": "json" if as_json else "console"}
        return data


class LimitsSettings(BaseModel):
    """Bounds on what one request or one expression may cost (see docs/security.md)."""

    expression_max_size: int = Field(
        default=1_000_000,
        ge=1000,
        description="Largest value an expression may build, in characters plus list/object "
        "items; larger results fail the expression (passing a larger value along unchanged "
        "is allowed).",
    )
    body_max_depth: int = Field(
        default=64, ge=2, le=1000, description="Deepest nesting of a JSON request body."
    )
    yaml_max_aliases: int = Field(
        default=100, ge=0, description="Most YAML aliases (`*name`) one document may use."
    )
    yaml_max_nodes: int = Field(
        default=100_000, ge=10, description="Most YAML nodes (scalars, lists, maps) per document."
    )
    list_max_offset: int = Field(
        default=100_000,
        ge=1,
        description="Furthest a paged list may skip (page x page size); cursors reach further.",
    )


class ContentSettings(BaseModel):
    """The content service: what it accepts and how it cuts text for retrieval."""

    max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="Largest document accepted (upload or JSON text), in bytes; larger is a "
        "413. The gateway's `max_body_bytes` (10 MiB) applies in front: raise both together.",
    )
    inline_max_bytes: int = Field(
        default=256 * 1024,
        ge=0,
        description="Documents up to this size are processed during the request (answer "
        "`processed`); larger ones on the task queue (answer `processing`).",
    )
    max_extracted_chars: int = Field(
        default=5_000_000,
        ge=1000,
        description="Most characters of text extracted from one document (a decompression "
        "bomb stops here and the document fails).",
    )
    chunk_size: int = Field(
        default=1000, ge=100, le=20_000, description="Target length of a chunk, in characters."
    )
    chunk_overlap: int = Field(
        default=150, ge=0, le=5000, description="Characters consecutive chunks share."
    )


class PluginSettings(BaseModel):
    """WebAssembly plugins: the platform's maxima, which no plugin's own limits exceed."""

    max_module_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest `.wasm` module accepted."
    )
    timeout_ms: int = Field(
        default=2000, ge=1, description="Time limit of one call unless the plugin asks for less."
    )
    max_timeout_ms: int = Field(
        default=10_000, ge=1, description="Longest time limit a plugin may ask for."
    )
    max_memory_pages: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="Most linear memory a call may use, in 64 KiB pages (256 = 16 MiB).",
    )
    concurrency: int = Field(
        default=4, ge=1, le=256, description="Plugin calls run at once per process (threads)."
    )
    max_output_bytes: int = Field(
        default=1024 * 1024, ge=1, description="Largest output a call may return."
    )


class EmbeddingSettings(BaseModel):
    """Where text embeddings come from (content and knowledge search)."""

    provider: Literal["local", "openai", "none"] = Field(
        default="local",
        description="`local`: all-MiniLM-L6-v2 on the CPU, shipped inside a Python package "
        "(no download); `openai`: an OpenAI-compatible `/embeddings` endpoint at `url`; "
        "`none`: semantic search off (it answers 422).",
    )
    url: str | None = Field(
        default=None, description="Base URL of an OpenAI-compatible API (provider `openai`)."
    )
    model: str = Field(
        default="text-embedding-3-small", description="Model name sent to the `openai` provider."
    )
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the `openai` provider."
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Vector size asked of the `openai` provider."
    )
    batch_size: int = Field(
        default=32, ge=1, le=2048, description="Texts embedded per model call or request."
    )
    timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time limit of one request to the `openai` provider."
    )


class GraphQLSettings(BaseModel):
    """GraphQL at the gateway (`/graphql`)."""

    enabled: bool = Field(default=True, description="Serve `/graphql` at the gateway.")
    graphiql: bool = Field(
        default=True, description="Serve the GraphiQL IDE to browsers at `GET /graphql`."
    )
    max_depth: int = Field(default=10, ge=1, description="Deepest nesting of an operation.")
    max_cost: int = Field(
        default=10_000,
        ge=1,
        description="Largest cost of an operation: each field 1, times the items its list "
        "may hold (docs/graphql.md).",
    )
    persisted_queries_size: int = Field(
        default=1000, ge=1, description="Persisted queries kept in each gateway's memory."
    )
    persisted_queries_ttl_seconds: int = Field(
        default=86_400, ge=1, description="How long Redis keeps a persisted query."
    )
    persisted_queries_prefix: str = Field(
        default="orn:apq:", description="Redis key prefix of persisted queries."
    )


class NotificationsSettings(BaseModel):
    """The notifications service: channel providers, delivery retries and webhook rules."""

    smtp_url: str | None = Field(
        default=None,
        description="SMTP server for `email`: `smtp://host:port` (STARTTLS when offered, see "
        "`smtp_starttls`) or `smtps://host:port` (TLS from the first byte); credentials may "
        "be in the URL (`smtp://user:pass@host`). Unset, email sends fail.",
    )
    smtp_username: str | None = Field(
        default=None, description="SMTP user (overrides one in `smtp_url`)."
    )
    smtp_password: SecretStr | None = Field(
        default=None, description="SMTP password (overrides one in `smtp_url`)."
    )
    smtp_starttls: bool | None = Field(
        default=None,
        description="`smtp://` only: true requires STARTTLS, false never upgrades, unset "
        "upgrades when the server offers it.",
    )
    smtp_ca_file: str | None = Field(
        default=None,
        description="PEM file of the certificate authorities the SMTP server's certificate "
        "is checked against (default: the system's).",
    )
    smtp_from: str = Field(
        default="orchestrion@localhost", description="`From` address of every email."
    )
    webhook_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts or CIDRs webhooks may reach although private or loopback "
        "(comma-separated in the environment); everything else must be public.",
    )
    webhook_secret_grace_seconds: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="How long a rotated webhook secret still signs (next to the new one), "
        "so receivers can switch without losing deliveries.",
    )
    sms_base_url: str | None = Field(
        default=None,
        description="Base URL of a Twilio-compatible SMS API (`POST /2010-04-01/Accounts/"
        "{sid}/Messages.json`). Unset, SMS sends fail.",
    )
    sms_account_sid: str | None = Field(
        default=None, description="Account SID of the SMS API (the basic-auth user)."
    )
    sms_auth_token: SecretStr | None = Field(
        default=None, description="Auth token of the SMS API (the basic-auth password)."
    )
    sms_from: str | None = Field(default=None, description="Sender number of SMS (`From`).")
    push_base_url: str | None = Field(
        default=None,
        description="Base URL of an FCM-v1-compatible push API (`POST /v1/projects/"
        "{project}/messages:send`). Unset, push sends fail.",
    )
    push_project_id: str | None = Field(default=None, description="Project of the push API.")
    push_access_token: SecretStr | None = Field(
        default=None, description="Bearer token sent to the push API."
    )
    max_attempts: int = Field(
        default=5, ge=1, le=50, description="Send attempts before a notification is `failed`."
    )
    retry_initial_seconds: float = Field(
        default=5.0, gt=0, description="Wait after the first transient failure."
    )
    retry_max_seconds: float = Field(
        default=600.0, gt=0, description="Longest wait between two attempts."
    )
    retry_jitter: float = Field(
        default=0.2, ge=0, le=1, description="Each wait varies by up to this fraction."
    )
    send_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Time limit of one send (SMTP, webhook, provider call)."
    )
    concurrency: int = Field(default=8, ge=1, le=256, description="Sends one process runs at once.")
    max_rendered_chars: int = Field(
        default=100_000,
        ge=100,
        description="Longest subject or body a template may render; past it the send is refused.",
    )

    @field_validator("webhook_allowlist", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class Settings(BaseSettings):
    """Everything the platform can be told, in one typed object."""

    model_config = SettingsConfigDict(
        env_prefix="ORCHESTRION_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = Field(
        default="development", description="Production refuses development defaults."
    )
    host: str = Field(default="127.0.0.1", description="Address `orchestrion up` binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `orchestrion up` binds.")
    shutdown_grace_seconds: int = Field(
        default=25,
        ge=1,
        description="On SIGTERM or Ctrl-C, how long requests in flight (and open streams) "
        "get to finish before their connections are closed and the process stops.",
    )
    public_url: str | None = Field(
        default=None, description="Base URL clients use (defaults to http://host:port)."
    )
    data_dir: Path = Field(default=Path(".orchestrion"), description="Embedded data directory.")
    secret_key: SecretStr = Field(
        default=SecretStr(_DEV_SECRET),
        description="Secret for internal signatures (identity headers, key encryption). "
        "Unset, `orchestrion up` on loopback generates one in `<data_dir>/secret_key`; "
        "anything reachable from other hosts, or in production, refuses to start without it.",
    )
    secret_key_previous: SecretStr | None = Field(
        default=None,
        description="The secret before the last rotation of `secret_key`: what it encrypted "
        "(signing keys, provider keys, MCP headers, webhook secrets) stays readable.",
    )
    admin_email: str = Field(
        default="admin@orchestrion.local", description="Bootstrap admin email."
    )
    admin_password: SecretStr | None = Field(
        default=None, description="Bootstrap admin password; generated and printed once if unset."
    )
    default_tenant: str = Field(default="default", description="Name of the bootstrap tenant.")

    peers: dict[str, str] = Field(
        default_factory=dict,
        description='Base URLs of services by name (`{"content": "http://h:p"}`) for '
        "a standalone process: where steps, templates and realtime reach other services. "
        "Without an entry, in-process clients (`up`) or the service registry (Redis).",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    content: ContentSettings = Field(default_factory=ContentSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    graphql: GraphQLSettings = Field(default_factory=GraphQLSettings)
    notifications: NotificationsSettings = Field(default_factory=NotificationsSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)

    @model_validator(mode="after")
    def _refuse_development_secret(self) -> Settings:
        if self.environment == "production" and self.secret_key.get_secret_value() == _DEV_SECRET:
            raise ValueError("ORCHESTRION_SECRET_KEY must be set in production")
        hashing = self.auth.password_hashing
        if self.environment == "production" and (
            hashing.memory_kib < _OWASP_MEMORY_KIB or hashing.time_cost < 2
        ):
            raise ValueError(
                "ORCHESTRION_AUTH__PASSWORD_HASHING__*: production needs at least "
                f"{_OWASP_MEMORY_KIB} KiB and 2 passes (OWASP's argon2id floor)"
            )
        return self

    @property
    def uses_development_secret(self) -> bool:
        """Whether ``secret_key`` is the public development value (nothing was set)."""
        return self.secret_key.get_secret_value() == _DEV_SECRET

    def use_secret(self, value: str) -> None:
        """Adopt ``value`` (a generated secret) in place of the development one, which
        stays readable as ``secret_key_previous`` for data written under it earlier."""
        if self.secret_key_previous is None and self.uses_development_secret:
            self.secret_key_previous = SecretStr(_DEV_SECRET)
        self.secret_key = SecretStr(value)

    @property
    def previous_secrets(self) -> tuple[bytes, ...]:
        """Secrets data may still be encrypted under (``secret_key_previous``)."""
        if self.secret_key_previous is None or not self.secret_key_previous.get_secret_value():
            return ()
        return (self.secret_key_previous.get_secret_value().encode(),)

    @property
    def database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'orchestrion.db').resolve()}"

    @property
    def base_url(self) -> str:
        """The URL clients reach the gateway at."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def generate_password() -> str:
    """A strong random password for the bootstrap admin."""
    return secrets.token_urlsafe(18)


def service_app_options(settings: Settings, name: str) -> dict[str, Any]:
    """What every service's app takes from the settings: ``create_service_app``'s
    ``name``, ``title``, ``version``, ``identity_secret`` and ``limits``."""
    from orchestrion import __version__

    return {
        "name": name,
        "title": f"Orchestrion {name}",
        "version": __version__,
        "identity_secret": settings.secret_key.get_secret_value().encode(),
        "limits": settings.limits,
    }


def open_database(settings: Settings) -> Database:
    """A :class:`Database` on the configured URL with the configured pool and timeouts."""
    from orchestrion.kernel.db.engine import Database  # SQLAlchemy loads when a command needs it

    return Database(
        settings.database_url,
        echo=settings.database.echo,
        pool_size=settings.database.pool_size,
        busy_timeout_ms=settings.database.busy_timeout_ms,
    )


def open_revocations(settings: Settings, *, follow: bool = True) -> Revocations:
    """Revocation notices of this deployment: shared through Redis when it is configured."""
    from orchestrion.kernel.auth.revocation import Revocations  # imports redis: only when used

    return Revocations(
        # Past an access token's lifetime (plus clock leeway) a notice concerns nothing.
        lifetime=settings.auth.access_token_ttl_seconds + 60.0,
        redis_url=settings.redis.url,
        key=settings.auth.revocation_key,
        follow=follow,
    )
