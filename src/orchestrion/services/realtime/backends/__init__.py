"""Realtime backends, chosen by settings: memory (one process) or Redis (many)."""

from __future__ import annotations

from orchestrion.services.realtime.backends.base import Backend
from orchestrion.services.realtime.config import RealtimeSettings


def open_backend(config: RealtimeSettings) -> Backend:
    """Redis when a URL is configured, else the in-process backend."""
    if config.redis_url:
        from orchestrion.services.realtime.backends.redis import RedisBackend

        return RedisBackend(
            config.redis_url,
            prefix=config.redis_prefix,
            history_size=config.history_size,
            history_ttl_seconds=config.history_ttl_seconds,
            presence_ttl_seconds=config.presence_ttl_seconds,
            max_tenant_messages=config.max_tenant_history_messages,
            max_tenant_bytes=config.max_tenant_history_bytes,
        )
    from orchestrion.services.realtime.backends.memory import MemoryBackend

    return MemoryBackend(
        history_size=config.history_size,
        max_channels=config.max_channels,
        max_tenant_messages=config.max_tenant_history_messages,
        max_tenant_bytes=config.max_tenant_history_bytes,
    )
