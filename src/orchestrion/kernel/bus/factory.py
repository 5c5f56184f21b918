"""``open_bus(url)``: the backend is picked by the URL's scheme.

=============================  ==========================================
``memory://``                  in-process (embedded default)
``redis://``, ``rediss://``    Redis Streams
``amqp://``, ``amqps://``      RabbitMQ (publisher confirms, quorum queues)
``nats://``, ``tls://``        NATS JetStream
``kafka://host:port[,host…]``  Apache Kafka
=============================  ==========================================

Broker client libraries are imported only for the backend asked for, so the
embedded shape needs none of them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from orchestrion.kernel.bus.base import Bus
from orchestrion.kernel.bus.dedup import Deduplicator

SCHEMES = ("memory", "redis", "rediss", "amqp", "amqps", "nats", "tls", "kafka")


def open_bus(url: str, *, dedup: Deduplicator | None = None, **options: Any) -> Bus:
    """A bus for ``url``, not yet started: ``async with open_bus(url) as bus: ...``.

    ``dedup`` is the default deduplicator of every subscription (in memory unless
    given; the Redis backend defaults to Redis). ``options`` go to the backend's
    constructor (``prefix``, ``exchange``, ``partitions``...).
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from orchestrion.kernel.bus.memory import MemoryBus

        return MemoryBus(dedup=dedup, **options)
    if scheme in ("redis", "rediss"):
        from orchestrion.kernel.bus.redis import RedisBus

        return RedisBus(url, dedup=dedup, **options)
    if scheme in ("amqp", "amqps"):
        from orchestrion.kernel.bus.rabbitmq import RabbitMQBus

        return RabbitMQBus(url, dedup=dedup, **options)
    if scheme in ("nats", "tls"):
        from orchestrion.kernel.bus.nats import NatsBus

        return NatsBus(url, dedup=dedup, **options)
    if scheme == "kafka":
        from orchestrion.kernel.bus.kafka import KafkaBus

        return KafkaBus(url, dedup=dedup, **options)
    raise ValueError(f"unknown bus URL scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def is_memory(url: str) -> bool:
    """Whether ``url`` names the in-process bus."""
    return urlsplit(url).scheme.lower() == "memory"


async def service_bus(shared: Bus | None, url: str) -> tuple[Bus | None, bool]:
    """The bus a service uses, and whether it owns it (and must close it).

    In-process (``memory://``) there is one bus per process, shared by the composer
    (``shared``, possibly none); a broker URL gets the service its own connection.
    """
    if is_memory(url):
        return shared, False
    bus = open_bus(url)
    await bus.start()
    return bus, True
