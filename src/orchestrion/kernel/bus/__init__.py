"""The event bus: CloudEvents over topics, consumed by groups, on several brokers.

``open_bus(url)`` picks the backend; every backend implements :class:`Bus` with the
same semantics (at least once, consumer groups, retries, dead letters, dedup).
"""

from orchestrion.kernel.bus.base import (
    Backoff,
    Bus,
    BusUnavailable,
    Handler,
    InvalidName,
    Subscription,
)
from orchestrion.kernel.bus.dedup import (
    Claim,
    Deduplicator,
    MemoryDeduplicator,
    RedisDeduplicator,
)
from orchestrion.kernel.bus.dlq import DeadLetter, dlq_topic
from orchestrion.kernel.bus.events import CloudEvent, InvalidEvent
from orchestrion.kernel.bus.factory import is_memory, open_bus, service_bus

__all__ = [
    "Backoff",
    "Bus",
    "BusUnavailable",
    "Claim",
    "CloudEvent",
    "DeadLetter",
    "Deduplicator",
    "Handler",
    "InvalidEvent",
    "InvalidName",
    "MemoryDeduplicator",
    "RedisDeduplicator",
    "Subscription",
    "dlq_topic",
    "is_memory",
    "open_bus",
    "service_bus",
]
