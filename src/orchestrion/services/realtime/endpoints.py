"""Routes of the realtime service: the socket and the platform's publish endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket

from orchestrion.kernel.http.deps import Internal
from orchestrion.services.realtime.schemas import InternalPublish, PublishResult
from orchestrion.services.realtime.service import Realtime
from orchestrion.services.realtime.session import serve_socket

router = APIRouter(tags=["realtime"])


@router.websocket("/ws")
async def socket(websocket: WebSocket) -> None:
    """The realtime socket (frames described in docs/realtime.md)."""
    state = websocket.app.state
    await serve_socket(
        websocket, state.realtime, secret=state.identity_secret, verifier=state.verifier
    )


@router.post(
    "/internal/realtime/publish",
    response_model=PublishResult,
    include_in_schema=False,
    summary="Publish on a channel (the platform's side)",
)
async def publish(body: InternalPublish, request: Request, _internal: Internal) -> PublishResult:
    """Fan a message out on a tenant's channel; stored unless it carries a seq or is ephemeral."""
    realtime: Realtime = request.app.state.realtime
    seq = await realtime.publish_internal(body)
    return PublishResult(channel=body.channel, seq=seq)
