"""WebSockets through the gateway: frames pumped both ways, close codes kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from orchestrion.gateway.forwarded import upstream_headers

logger = logging.getLogger("orchestrion.gateway")


async def proxy_websocket(
    base_url: str,
    name: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Open the same socket on the service at ``base_url`` and pump frames until one side
    closes (``wss://`` with ``tls`` when the service is ``https://``)."""
    if (await receive())["type"] != "websocket.connect":
        return
    path = scope.get("raw_path") or scope["path"].encode()
    query = "?" + scope["query_string"].decode() if scope.get("query_string") else ""
    url = "ws" + base_url.removeprefix("http") + path.decode("latin-1") + query
    protocols = [p.strip() for p in scope.get("subprotocols", [])]
    trusted = scope.get("orchestrion.trusted_peer", False)
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in upstream_headers(scope, trusted_peer=trusted)
    ]
    try:
        upstream = await connect(
            url,
            additional_headers=headers,
            subprotocols=protocols or None,
            open_timeout=10,
            ssl=tls if url.startswith("wss://") else None,
        )
    except (InvalidHandshake, InvalidStatus, OSError, TimeoutError) as exc:
        logger.warning("websocket to %s failed: %s", name, exc)
        await send({"type": "websocket.close", "code": 1011})
        return
    async with upstream:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await _pump(upstream, receive, send)


async def _pump(upstream: Any, receive: Receive, send: Send) -> None:
    async def client_to_upstream() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=message.get("code", 1000))
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def upstream_to_client() -> None:
        try:
            async for frame in upstream:
                key = "text" if isinstance(frame, str) else "bytes"
                await send({"type": "websocket.send", key: frame})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(Exception):
            await send(
                {"type": "websocket.close", "code": code, "reason": upstream.close_reason or ""}
            )

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await task
