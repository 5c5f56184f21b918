"""The realtime service's settings: ``ORCHESTRION_REALTIME__*`` (see
:class:`~orchestrion.settings.RealtimeSettings`), Redis from ``ORCHESTRION_REDIS__URL``
unless the section names its own."""

from __future__ import annotations

from orchestrion.settings import RealtimeSettings, Settings

__all__ = ["RealtimeSettings", "realtime_settings"]


def realtime_settings(settings: Settings) -> RealtimeSettings:
    """The realtime section, its Redis URL falling back to the shared ``redis.url``."""
    config = settings.realtime
    if config.redis_url is None and settings.redis.url:
        config = config.model_copy(update={"redis_url": settings.redis.url})
    return config
