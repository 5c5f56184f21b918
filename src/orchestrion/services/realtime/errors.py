"""Errors of the realtime service: frame errors (answered, the socket stays) and close codes.

Exception tree::

    FrameError                 answered with {"type": "error", "code", "message", "ref"}
    ├── BadFrame               code "bad_frame": unknown type, missing or wrong fields
    │   └── InvalidFrame       code "invalid_frame": not one strict JSON object (NaN, duplicate
    │                          keys, nesting deeper than 32, lone surrogates, not an object)
    ├── FrameTooLarge          code "frame_too_large"
    ├── MessageTooLarge        code "message_too_large": a publish's data past max_message_bytes
    ├── RateLimited            code "rate_limited", with "retry_after" (seconds)
    ├── BadChannel             code "bad_channel": not a channel name
    ├── ChannelForbidden       code "forbidden": outside the principal's rights
    ├── ChannelNotFound        code "not_found": no such channel in the tenant
    ├── ReadOnlyChannel        code "read_only": the platform publishes there, not clients
    ├── NotSubscribed          code "not_subscribed"
    ├── TooManySubscriptions   code "too_many_subscriptions"
    ├── AuthRefused            code "unauthenticated": a fresh auth frame's token is not
    │                          valid, or names another user (the socket keeps its credential)
    └── SourceUnavailable      code "unavailable": a service behind the channel did not answer
"""

from __future__ import annotations

from typing import Any, ClassVar

# Close codes (RFC 6455 private range 4000-4999 mirrors HTTP statuses where one fits).
CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008  # max_rate_violations rate-limited frames on one socket
CLOSE_SERVICE_RESTART = 1012  # the instance is shutting down: reconnect elsewhere
CLOSE_OVERLOADED = 1013  # this process holds max_connections: try again later
CLOSE_UNAUTHENTICATED = 4401  # no, bad, late, revoked or expired credentials
CLOSE_SLOW_CONSUMER = 4408  # the send queue overflowed: the client read too slowly
CLOSE_HEARTBEAT_MISSED = 4410  # nothing received for heartbeat_timeout_seconds
CLOSE_TOO_MANY_CONNECTIONS = 4429  # the user holds max_connections_per_user sockets here


class FrameError(Exception):
    """A client frame that cannot be served; the connection stays open."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, Any]:
        """Fields the error frame carries besides ``code``, ``message`` and ``ref``."""
        return {}


class BadFrame(FrameError):
    """The frame is not a valid client frame."""

    code = "bad_frame"


class InvalidFrame(BadFrame):
    """The text is not one strict JSON object."""

    code = "invalid_frame"


class FrameTooLarge(FrameError):
    """The frame is larger than ``max_frame_bytes``."""

    code = "frame_too_large"


class MessageTooLarge(FrameError):
    """A publish whose ``data`` is larger than ``max_message_bytes``."""

    code = "message_too_large"


class RateLimited(FrameError):
    """The connection or its user sends faster than allowed; retry after ``retry_after``."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def fields(self) -> dict[str, Any]:
        """The retry hint, in seconds."""
        return {"retry_after": round(self.retry_after, 3)}


class BadChannel(FrameError):
    """The channel name is not one of the known forms."""

    code = "bad_channel"


class ChannelForbidden(FrameError):
    """The principal may not do this on this channel."""

    code = "forbidden"


class ChannelNotFound(FrameError):
    """No such channel in the principal's tenant (another tenant's is not found either)."""

    code = "not_found"


class ReadOnlyChannel(FrameError):
    """Clients may not publish on this channel."""

    code = "read_only"


class NotSubscribed(FrameError):
    """The frame needs a subscription to the channel first."""

    code = "not_subscribed"


class TooManySubscriptions(FrameError):
    """The connection holds ``max_subscriptions`` channels already."""

    code = "too_many_subscriptions"


class AuthRefused(FrameError):
    """A fresh ``auth`` frame on an open socket that does not renew its credential."""

    code = "unauthenticated"


class SourceUnavailable(FrameError):
    """The service that owns the channel's history did not answer."""

    code = "unavailable"
