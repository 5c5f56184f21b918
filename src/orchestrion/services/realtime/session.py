"""One socket's life: authenticate, admit, serve frames, clean up.

Authentication, in order: the identity header the gateway signed (it verified the
client's ``Authorization``); the subprotocol pair ``bearer, <token>`` (the socket is
accepted with subprotocol ``bearer``); a first frame ``{"type": "auth", "token"}``
within ``auth_timeout_seconds``. Anything else is closed with 4401.

A socket whose credential expires (a JWT's ``exp``, an API key's expiry) is closed with
4401 then, unless the client sent a fresh ``{"type": "auth", "token"}`` first (the same
user's): the answer is a new ``welcome`` with the new ``expires_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, decode_identity
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.tokens import TokenVerifier
from orchestrion.kernel.errors import Unauthenticated
from orchestrion.kernel.ids import new_id
from orchestrion.services.realtime.connection import Connection
from orchestrion.services.realtime.errors import (
    CLOSE_HEARTBEAT_MISSED,
    CLOSE_OVERLOADED,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_UNAUTHENTICATED,
    AuthRefused,
    BadFrame,
    FrameError,
    FrameTooLarge,
)
from orchestrion.services.realtime.schemas import (
    AuthFrame,
    dumps,
    error_frame,
    parse_frame,
    peek_ref,
    welcome,
    with_ref,
)
from orchestrion.services.realtime.service import Realtime

logger = logging.getLogger("orchestrion.realtime")
BEARER = "bearer"


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _verify(verifier: TokenVerifier | None, token: str) -> Principal:
    if verifier is None:
        raise _Refused(CLOSE_OVERLOADED, "token verification is not available here")
    try:
        return await verifier.verify(token)
    except Unauthenticated as exc:
        raise _Refused(CLOSE_UNAUTHENTICATED, exc.detail[:120]) from None
    except Exception:
        logger.warning("token verification failed", exc_info=True)
        raise _Refused(CLOSE_OVERLOADED, "cannot verify tokens right now; retry") from None


async def authenticate(
    websocket: WebSocket, *, secret: bytes, verifier: TokenVerifier | None, wait: float
) -> tuple[Principal, Any]:
    """Accept the socket and find its principal (and the auth frame's ref), or refuse it."""
    offered: list[str] = list(websocket.scope.get("subprotocols") or [])
    subprotocol = BEARER if BEARER in offered else None
    identity = websocket.headers.get(IDENTITY_HEADER)
    principal = decode_identity(identity, secret) if identity else None
    await websocket.accept(subprotocol=subprotocol)
    if principal is not None:
        return principal, None
    tokens = [value for value in offered if value != BEARER]
    if subprotocol and tokens:
        return await _verify(verifier, tokens[0]), None
    try:
        async with asyncio.timeout(wait):
            message = await websocket.receive()
    except TimeoutError:
        raise _Refused(CLOSE_UNAUTHENTICATED, "authenticate within the time allowed") from None
    text = message.get("text")
    if message["type"] != "websocket.receive" or not isinstance(text, str):
        raise _Refused(CLOSE_UNAUTHENTICATED, "authentication required")
    try:
        frame = parse_frame(text)
    except FrameError:
        frame = None
    if not isinstance(frame, AuthFrame):
        raise _Refused(CLOSE_UNAUTHENTICATED, 'the first frame must be {"type": "auth"}')
    return await _verify(verifier, frame.token), frame.ref


def _admission(realtime: Realtime, principal: Principal) -> _Refused | None:
    config = realtime.config
    if len(realtime.connections) >= config.max_connections:
        return _Refused(CLOSE_OVERLOADED, "this instance is at capacity; retry later")
    if realtime.per_user.get(principal.user_id, 0) >= config.max_connections_per_user:
        return _Refused(CLOSE_TOO_MANY_CONNECTIONS, "too many connections for this user")
    return None


async def serve_socket(
    websocket: WebSocket, realtime: Realtime, *, secret: bytes, verifier: TokenVerifier | None
) -> None:
    """Run one socket from handshake to cleanup."""
    config = realtime.config
    try:
        principal, ref = await authenticate(
            websocket, secret=secret, verifier=verifier, wait=config.auth_timeout_seconds
        )
        refused = _admission(realtime, principal)
        if refused is not None:
            raise refused
    except _Refused as exc:
        with contextlib.suppress(Exception):  # the client may have left already
            await websocket.close(code=exc.code, reason=exc.reason)
        return
    connection = Connection(
        connection_id=new_id(),
        principal=principal,
        send=websocket.send,
        max_queue=config.send_queue_size,
        close_timeout=config.close_timeout_seconds,
    )
    realtime.register(connection)
    try:
        connection.push(dumps(with_ref(welcome(connection.id, principal.expires_at), ref)))
        await _read(websocket, realtime, connection, verifier)
    except asyncio.CancelledError:
        if not connection.aborted:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        await connection.finish()
        await realtime.unregister(connection)


async def _read(
    websocket: WebSocket, realtime: Realtime, connection: Connection, verifier: TokenVerifier | None
) -> None:
    config = realtime.config
    while True:
        try:
            async with asyncio.timeout(config.heartbeat_timeout_seconds):
                message = await websocket.receive()
        except TimeoutError:
            connection.close(CLOSE_HEARTBEAT_MISSED, "heartbeat missed")
            continue
        if message["type"] == "websocket.disconnect":
            return
        if connection.closing:
            continue
        text = message.get("text")
        if text is None:
            connection.push(error_frame(BadFrame.code, "frames are JSON text, not binary"))
            continue
        await _serve_frame(realtime, connection, text, verifier)


async def _renew(
    realtime: Realtime, connection: Connection, frame: AuthFrame, verifier: TokenVerifier | None
) -> None:
    """A fresh token on an open socket: it lives on until that one's expiry."""
    try:
        principal = await _verify(verifier, frame.token)
    except _Refused as exc:
        raise AuthRefused(f"the fresh token was refused: {exc.reason}") from None
    realtime.reauthenticate(connection, principal, frame.ref)


async def _serve_frame(
    realtime: Realtime, connection: Connection, text: str, verifier: TokenVerifier | None
) -> None:
    limit = realtime.config.max_frame_bytes
    ref = None
    try:
        if len(text) > limit // 4 and len(text.encode()) > limit:
            raise FrameTooLarge(
                f"frames are at most {limit} bytes (ORCHESTRION_REALTIME__MAX_FRAME_BYTES)"
            )
        frame = parse_frame(text)
        ref = frame.ref
        if isinstance(frame, AuthFrame):
            await _renew(realtime, connection, frame, verifier)
        else:
            await realtime.handle(connection, frame)
    except FrameError as exc:
        connection.push(
            error_frame(
                exc.code,
                exc.message,
                ref if ref is not None else peek_ref(text),
                **exc.fields(),
            )
        )
    except Exception:
        logger.exception("realtime frame failed on connection %s", connection.id)
        connection.push(error_frame("internal", "the frame could not be served", ref))
