"""Local fan-out: which of this process's connections listen to which channel key."""

from __future__ import annotations

from orchestrion.services.realtime.backends.base import Envelope
from orchestrion.services.realtime.channels import channel_of_key
from orchestrion.services.realtime.connection import Subscription
from orchestrion.services.realtime.schemas import envelope_frame


class Hub:
    """Channel key → subscriptions here; the backend calls :meth:`deliver` for each envelope."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, Subscription]] = {}

    def add(self, subscription: Subscription) -> bool:
        """Register; True when it is the first local listener of its key."""
        local = self.subscriptions.setdefault(subscription.key, {})
        local[subscription.connection.id] = subscription
        return len(local) == 1

    def remove(self, subscription: Subscription) -> bool:
        """Unregister; True when it was the last local listener of its key."""
        local = self.subscriptions.get(subscription.key)
        if not local or local.get(subscription.connection.id) is not subscription:
            return False
        del local[subscription.connection.id]
        if local:
            return False
        del self.subscriptions[subscription.key]
        return True

    def deliver(self, envelope: Envelope) -> None:
        """Offer ``envelope`` to every local subscriber, serialized once."""
        local = self.subscriptions.get(envelope.key)
        if not local:
            return
        channel = channel_of_key(envelope.key)
        text = envelope_frame(envelope, channel)
        seq = envelope.seq if envelope.kind == "message" else None
        for subscription in list(local.values()):
            if envelope.origin is not None and subscription.connection.id == envelope.origin:
                # The publisher's own copy is its acknowledgement: it carries its ref.
                subscription.offer(seq, envelope_frame(envelope, channel, envelope.ref))
            else:
                subscription.offer(seq, text)
