"""One ``Date`` and one ``Server`` on every answer the gateway sends.

A gateway (reverse proxy) is the origin server its clients see (RFC 9110 §3.7), so:

- ``Server: orchestrion``, once, without a version (RFC 9110 §10.2.4: no needless
  detail; a version number only tells a scanner which advisories to try). uvicorn sends
  it on every answer, its own 400s and 500s included (:data:`SERVER_HEADER` as its
  ``headers`` option); the proxy drops the service's.
- ``Date``, once: the service's, when it sent one - the time its origin made the answer
  (RFC 9110 §6.6.1), which the response cache relies on for ``Expires`` and replays
  with ``Age`` - else the gateway's, added by :class:`DateHeader`. uvicorn's own
  ``Date`` is off in front of it: uvicorn puts one on every answer whatever the app
  sent, which is how a proxied answer came to carry two.

A service run on its own (``orchestrion serve``) is an origin: uvicorn's ``Date`` stays
on there, with the same ``Server``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# uvicorn's `headers` option: sent on every answer instead of its own "server: uvicorn".
SERVER_HEADER = ("server", "orchestrion")

_clock: list[tuple[int, bytes]] = [(0, b"")]


def http_date() -> bytes:
    """The current time as an HTTP-date (``Sun, 06 Nov 1994 08:49:37 GMT``).

    Formatted at most once a second, like uvicorn's own.
    """
    now = int(time.time())
    second, value = _clock[0]
    if second != now:
        value = formatdate(now, usegmt=True).encode()
        _clock[0] = (now, value)
    return value


def has_date(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether ASGI ``headers`` include ``Date``."""
    return any(len(name) == 4 and name.lower() == b"date" for name, _ in headers)


class DateHeader:
    """Adds the gateway's ``Date`` to every HTTP answer that has none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass ``scope`` on; complete the head of an HTTP answer on its way out."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers") or []
                if not has_date(headers):
                    message = {**message, "headers": [*headers, (b"date", http_date())]}
            await send(message)

        await self.app(scope, receive, dated)
