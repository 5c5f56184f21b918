"""Frames: what clients send (validated models) and what the server sends (JSON text).

Client → server: ``auth`` (first, or later with a fresh token), ``subscribe`` (``after``:
resume), ``unsubscribe``, ``publish``, ``presence``, ``ping``; any may carry ``ref``,
echoed in the answer. The internal
publish body (:class:`InternalPublish`) is how the platform (the engine) feeds channels.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestrion.kernel.ids import isoformat
from orchestrion.services.realtime.backends.base import Envelope
from orchestrion.services.realtime.errors import BadFrame, InvalidFrame

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


#: Deepest nesting of arrays and objects a frame may have (the frame itself is depth 1).
MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise InvalidFrame(f"{name} is not JSON; numbers are finite")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise InvalidFrame("a frame's objects may not repeat a key")
    return found


def _check_tree(value: Any) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and strings with lone surrogates
    (they cannot be encoded as UTF-8, so no client could be sent them)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidFrame("strings may not hold lone surrogates (\\ud800-\\udfff)")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise InvalidFrame(f"a frame nests at most {MAX_DEPTH} levels of arrays and objects")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)


def loads_frame(text: str) -> dict[str, Any]:
    """``text`` as one strict JSON object, or :class:`InvalidFrame` saying why not."""
    try:
        raw = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except InvalidFrame:
        raise
    except RecursionError:
        raise InvalidFrame(
            f"a frame nests at most {MAX_DEPTH} levels of arrays and objects"
        ) from None
    except ValueError:
        raise InvalidFrame("a frame is a JSON object") from None
    if not isinstance(raw, dict):
        raise InvalidFrame("a frame is a JSON object")
    _check_tree(raw)
    return raw


def parse_frame(text: str) -> ClientFrame:
    """A client frame from its JSON text; :class:`BadFrame` naming what is wrong."""
    raw = loads_frame(text)
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
        raw = loads_frame(text)
    except BadFrame:
        return None
    ref = raw.get("ref")
    return ref if isinstance(ref, int | str) and len(str(ref)) <= 128 else None


def data_size(data: Any) -> int:
    """Bytes of ``data`` as compact JSON (what history stores and limits count)."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


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


def welcome(connection_id: str, expires_at: float | None) -> dict[str, Any]:
    """``{"type": "welcome", "connection_id", "expires_at"?}``: ``expires_at`` (ISO 8601)
    is when the socket's credential expires and the socket closes with 4401, unless a
    fresh ``auth`` frame comes first."""
    frame: dict[str, Any] = {"type": "welcome", "connection_id": connection_id}
    if expires_at is not None:
        frame["expires_at"] = isoformat(datetime.fromtimestamp(expires_at, UTC))
    return frame


def error_frame(code: str, message: str, ref: Any = None, **fields: Any) -> str:
    """``{"type": "error", "code", "message", "ref"?, ...fields}``."""
    frame = {"type": "error", "code": code, "message": message, **fields}
    return dumps(with_ref(frame, ref))


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
