"""CloudEvents 1.0 envelopes in JSON structured mode.

Every message on the bus is one CloudEvent serialized as a JSON object
(``application/cloudevents+json``), so any broker, language or tool can read it
without our code. The W3C ``traceparent`` rides along as an extension attribute
(the CloudEvents distributed-tracing extension), so a trace crosses the bus.

Only JSON data is carried: ``data`` is any JSON value. Binary payloads belong in
object storage, referenced from ``data``; keeping one encoding keeps every backend
and consumer simple.

Encoding and decoding are on every event's path, so they go through pydantic-core's
JSON (Rust; pydantic's own dependency), several times faster than the standard
library's, whenever the output is the same: ``data`` made of JSON's own types (exact
``dict`` with string keys, ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``,
``None``). Anything else (subclasses, other key types, text that is not UTF-8) takes
the standard library's path, which encodes it, or refuses it, exactly as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self

import pydantic_core

from orchestrion.kernel.errors import ValidationFailed
from orchestrion.kernel.ids import isoformat, new_id, utcnow
from orchestrion.kernel.observability import tracing

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
_CORE = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
)
# The spec allows lowercase letters and digits only, and recommends at most 20 of them.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# W3C Trace Context: version 00, non-zero trace and span ids.
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
# One encoder for every slow-path event rather than one per json.dumps call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SCALARS = frozenset({str, int, float, bool, type(None)})
# Deeper data takes the standard library's path, which also detects cycles.
_MAX_FAST_DEPTH = 32


class InvalidEvent(ValidationFailed):
    """A CloudEvent envelope that breaks the spec or is not JSON at all."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CloudEvent:
    """One event: who emitted it (``source``), what happened (``type``), and its data.

    ``id`` is unique per ``source``; consumers deduplicate on it, so a re-published
    event keeps its id. ``extensions`` holds any other extension attributes as strings.
    """

    source: str
    type: str
    data: Any = None
    subject: str | None = None
    id: str = field(default_factory=new_id)
    time: datetime = field(default_factory=utcnow)
    datacontenttype: str = "application/json"
    #: By default the current span's (tracing on): consumers continue that trace.
    traceparent: str | None = field(default_factory=tracing.traceparent)
    extensions: dict[str, str] = field(default_factory=dict)
    specversion: str = SPECVERSION

    def __post_init__(self) -> None:
        if _valid(self):
            return
        problems = _problems(self)
        if problems:
            raise InvalidEvent(
                "invalid CloudEvent: " + "; ".join(p["msg"] for p in problems), errors=problems
            )

    def with_extensions(self, **values: str | None) -> Self:
        """A copy with extension attributes set (``None`` removes one); the id is kept."""
        extensions = dict(self.extensions)
        for name, value in values.items():
            if value is None:
                extensions.pop(name, None)
            else:
                extensions[name] = value
        return replace(self, extensions=extensions)

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode JSON object, optional attributes left out when unset."""
        body: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        if self.subject is not None:
            body["subject"] = self.subject
        body["time"] = _timestamp(self.time)
        body["datacontenttype"] = self.datacontenttype
        if self.traceparent is not None:
            body["traceparent"] = self.traceparent
        body.update(self.extensions)
        body["data"] = self.data
        return body

    def to_json(self) -> bytes:
        """The event as compact UTF-8 JSON, ready for any broker."""
        body = self.to_dict()
        if _plain(self.data):
            try:
                return pydantic_core.to_json(body)
            except ValueError:
                pass  # text that is not UTF-8: the standard library says what is wrong
        return _ENCODER.encode(body).encode()

    @classmethod
    def from_dict(cls, body: Any) -> CloudEvent:
        """Parse a structured-mode object, rejecting anything the spec does not allow."""
        if not isinstance(body, dict):
            raise InvalidEvent("a CloudEvent must be a JSON object")
        if body.get("specversion") != SPECVERSION:
            raise InvalidEvent(f"specversion must be {SPECVERSION!r}")
        if "data_base64" in body:
            raise InvalidEvent("binary data (data_base64) is not supported; send JSON data")
        for name in ("id", "source", "type", "time"):
            if not isinstance(body.get(name), str):
                raise InvalidEvent(f"{name} is required and must be a string")
        time = _parse_time(body["time"])
        extensions: dict[str, str] = {}
        for name, value in body.items():
            if name in _CORE or name == "traceparent":
                continue
            if not isinstance(value, str):
                # Our envelopes carry extensions as strings; other scalars are stringified
                # the way the spec's canonical string encoding would.
                if isinstance(value, bool):
                    value = "true" if value else "false"
                elif isinstance(value, int | float):
                    value = str(value)
                else:
                    raise InvalidEvent(f"extension {name!r} must be a scalar")
            extensions[name] = value
        traceparent = body.get("traceparent")
        if traceparent is not None and not isinstance(traceparent, str):
            raise InvalidEvent("traceparent must be a string")
        subject = body.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise InvalidEvent("subject must be a string")
        content_type = body.get("datacontenttype", "application/json")
        if not isinstance(content_type, str):
            raise InvalidEvent("datacontenttype must be a string")
        event = cls(
            id=body["id"],
            source=body["source"],
            type=body["type"],
            subject=subject,
            time=time,
            datacontenttype=content_type,
            traceparent=traceparent,
            extensions=extensions,
        )
        # Data parsed from JSON is JSON: set it after validation instead of encoding it
        # again to prove it (the largest cost of receiving an event).
        object.__setattr__(event, "data", body.get("data"))
        return event

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        """Parse the JSON text of a structured-mode event."""
        try:
            body = pydantic_core.from_json(raw)
        except ValueError:
            # What the fast parser refuses the standard library may still read (UTF-16
            # text, lone surrogate escapes): it decides, as it always did.
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidEvent(f"not JSON: {exc}") from exc
        return cls.from_dict(body)


def _timestamp(moment: datetime) -> str:
    """``isoformat`` of ``moment``, without its conversions for the usual UTC time."""
    if moment.tzinfo is UTC:
        text = moment.isoformat()
        if text.endswith("+00:00"):
            return text[:-6] + "Z"
    return isoformat(moment) or ""


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds JSON's own types only, so both encoders agree on it."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth >= _MAX_FAST_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item, depth + 1) for item in value)
    return False


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidEvent(f"time is not RFC 3339: {value!r}") from exc
    if moment.tzinfo is None:
        raise InvalidEvent("time must carry a timezone (RFC 3339)")
    return moment


def _valid(event: CloudEvent) -> bool:
    """The usual event's quick yes; ``_problems`` looks closer when this says no."""
    traceparent = event.traceparent
    return bool(
        event.specversion == SPECVERSION
        and event.id
        and event.source
        and event.type
        and event.subject != ""
        and event.time.tzinfo is not None
        and event.datacontenttype
        and (traceparent is None or _TRACEPARENT.match(traceparent))
        and not event.extensions
        and _plain(event.data)
    )


def _problems(event: CloudEvent) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []

    def bad(loc: str, msg: str) -> None:
        problems.append({"loc": [loc], "msg": f"{loc} {msg}"})

    if event.specversion != SPECVERSION:
        bad("specversion", f"must be {SPECVERSION!r}")
    for name in ("id", "source", "type"):
        if not getattr(event, name):
            bad(name, "must be a non-empty string")
    if event.subject == "":
        bad("subject", "must be non-empty when given")
    if event.time.tzinfo is None:
        bad("time", "must be timezone-aware")
    if not event.datacontenttype:
        bad("datacontenttype", "must be non-empty")
    if event.traceparent is not None and not _TRACEPARENT.match(event.traceparent):
        bad("traceparent", "must be a W3C traceparent (00-<trace id>-<span id>-<flags>)")
    for name, value in event.extensions.items():
        if name in _CORE or name == "traceparent" or not _EXTENSION_NAME.match(name):
            bad(name, "is not a valid extension name (1-20 lowercase letters or digits)")
        elif not isinstance(value, str):
            bad(name, "must be a string")
    if not _plain(event.data):
        try:
            json.dumps(event.data)
        except (TypeError, ValueError):
            bad("data", "must be JSON-serializable")
    return problems
