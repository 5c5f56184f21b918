"""Frames: what clients send (validated models) and what the server sends (JSON text).

Client → server: ``auth``, ``subscribe`` (``after``: resume), ``unsubscribe``, ``publish``,
``presence``, ``ping``; any may carry ``ref``, echoed in the answer. The internal
publish body (:class:`InternalPublish`) is how the platform (the engine) feeds channels.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestrion.services.realtime.backends.base import Envelope
from orchestrion.services.realtime.errors import BadFrame

Ref = Annotated[str, Field(max_length=128)] | int | None
PresenceState = Literal["online", "away", "typing"]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)

    ref: Ref = None


class AuthFrame(_Frame):
    """``{"type": "auth", "token"}``: a JWT or an ``orn_`` API key."""

    type: Literal["auth"]
    token: Annotated[str, Field(min_length=1, max_length=8192)]


class SubscribeFrame(_Frame):
    """``{"type": "subscribe", "channel", "after"?}``."""

    type: Literal["subscribe"]
    channel: str
    after: Annotated[int, Field(ge=0)] | None = None


class UnsubscribeFrame(_Frame):
    """``{"type": "unsubscribe", "channel"}``."""

    type: Literal["unsubscribe"]
    channel: str


class PublishFrame(_Frame):
    """``{"type": "publish", "channel", "data"}``."""

    type: Literal["publish"]
    channel: str
    data: Any = None


class PresenceFrame(_Frame):
    """``{"type": "presence", "channel", "state"}``."""

    type: Literal["presence"]
    channel: str
    state: PresenceState


class PingFrame(_Frame):
    """``{"type": "ping"}``."""

    type: Literal["ping"]


ClientFrame = Annotated[
    AuthFrame | SubscribeFrame | UnsubscribeFrame | PublishFrame | PresenceFrame | PingFrame,
    Field(discriminator="type"),
]
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
_TYPES = ("auth", "subscribe", "unsubscribe", "publish", "presence", "ping")


def parse_frame(text: str) -> ClientFrame:
    """A client frame from its JSON text; :class:`BadFrame` naming what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise BadFrame("a frame is a JSON object") from None
    if not isinstance(raw, dict):
        raise BadFrame("a frame is a JSON object")
    if raw.get("type") not in _TYPES:
        raise BadFrame(f"unknown frame type; use one of {', '.join(_TYPES)}")
    try:
        return _CLIENT_FRAME.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "frame"
        raise BadFrame(f"{where}: {first['msg']}") from None


def peek_ref(text: str) -> Any:
    """The ``ref`` of a frame that failed to parse, when it has a usable one."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    ref = raw.get("ref") if isinstance(raw, dict) else None
    return ref if isinstance(ref, int | str) and len(str(ref)) <= 128 else None


def dumps(frame: dict[str, Any]) -> str:
    """A server frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=str)


def with_ref(frame: dict[str, Any], ref: Any) -> dict[str, Any]:
    """``frame`` carrying ``ref`` when there is one."""
    if ref is not None:
        frame["ref"] = ref
    return frame


def envelope_frame(envelope: Envelope, channel: str, ref: Any = None) -> str:
    """The server frame an envelope becomes on ``channel``."""
    if envelope.kind == "message":
        frame = {
            "type": "message",
            "channel": channel,
            "seq": envelope.seq,
            "data": envelope.payload,
        }
    elif envelope.kind == "token":
        payload = envelope.payload or {}
        frame = {
            "type": "token",
            "channel": channel,
            "step_id": payload.get("step_id"),
            "text": payload.get("text", ""),
        }
    else:
        frame = {"type": "presence", "channel": channel, "members": envelope.payload}
    return dumps(with_ref(frame, ref))


def error_frame(code: str, message: str, ref: Any = None) -> str:
    """``{"type": "error", "code", "message", "ref"?}``."""
    return dumps(with_ref({"type": "error", "code": code, "message": message}, ref))


class TokenData(BaseModel):
    """The ``data`` of an ephemeral publish: one chunk of an LLM's output."""

    step_id: str | None = None
    text: str


class InternalPublish(BaseModel):
    """Body of ``POST /internal/realtime/publish``.

    ``seq`` (execution channels): the execution event's seq, kept as the message's seq
    (the execution's log is the history, nothing is stored here). ``ephemeral``: an LLM
    token chunk (``data`` = ``{"step_id", "text"}``), fanned out as a ``token`` frame and
    never stored. Otherwise the message is stored under the channel's next seq.
    """

    model_config = ConfigDict(extra="forbid")

    tenant_id: Annotated[str, Field(min_length=1, max_length=128)]
    channel: str
    data: Any = None
    seq: Annotated[int, Field(ge=1)] | None = None
    ephemeral: bool = False


class PublishResult(BaseModel):
    """Answer of ``POST /internal/realtime/publish``: the seq the message got (None: not stored)."""

    channel: str
    seq: int | None
