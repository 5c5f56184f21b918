"""Dead letters: events a group gave up on, kept on ``<topic>.dlq`` for people to fix.

A dead letter is itself a CloudEvent (type ``orchestrion.bus.deadletter``) whose data
carries the original event, the group that failed, the last error and the number of
attempts, so the dead-letter topic can be subscribed to like any other (alerts,
dashboards). Replay re-publishes the original event, same id, to its topic, addressed
to the failed group only (the ``replaygroup`` extension): groups that handled it the
first time are not bothered again.

Log-based brokers that cannot delete one message (Kafka) mark a dead letter resolved
by appending an ``orchestrion.bus.deadletter.resolved`` event whose subject is the dead
letter's id; listings skip resolved letters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrion.kernel.bus.events import CloudEvent, InvalidEvent

DLQ_SUFFIX = ".dlq"
DEAD_LETTER_TYPE = "orchestrion.bus.deadletter"
RESOLVED_TYPE = "orchestrion.bus.deadletter.resolved"
BUS_SOURCE = "orchestrion/bus"
REPLAY_GROUP = "replaygroup"
MAX_ERROR_LENGTH = 2000


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return topic + DLQ_SUFFIX


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """One dead letter as listed by :meth:`Bus.dlq_list`.

    ``event`` is the original event, or ``None`` when the message was not a valid
    CloudEvent at all; then ``raw`` holds what arrived and the letter cannot be replayed.
    """

    id: str
    topic: str
    group: str
    attempts: int
    error: str
    time: datetime
    event: CloudEvent | None
    raw: str | None = None
    # Where the broker keeps it (stream id, sequence...): for deleting it after replay.
    handle: Any = field(default=None, repr=False, compare=False)


def dead_letter_event(
    *,
    topic: str,
    group: str,
    attempts: int,
    error: BaseException | str,
    event: CloudEvent | None = None,
    raw: bytes | None = None,
) -> CloudEvent:
    """The CloudEvent published to ``<topic>.dlq`` when ``group`` gives up on an event."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return CloudEvent(
        source=BUS_SOURCE,
        type=DEAD_LETTER_TYPE,
        subject=event.id if event is not None else None,
        traceparent=event.traceparent if event is not None else None,
        data={
            "topic": topic,
            "group": group,
            "attempts": attempts,
            "error": message[:MAX_ERROR_LENGTH],
            "event": event.to_dict() if event is not None else None,
            "raw": raw.decode(errors="replace") if raw is not None else None,
        },
    )


def resolved_event(dead_letter_id: str) -> CloudEvent:
    """The marker that retires a dead letter on a broker that cannot delete it."""
    return CloudEvent(source=BUS_SOURCE, type=RESOLVED_TYPE, subject=dead_letter_id)


def parse_dead_letter(event: CloudEvent, *, handle: Any = None) -> DeadLetter | None:
    """The dead letter ``event`` carries, or ``None`` for any other event."""
    data = event.data
    if event.type != DEAD_LETTER_TYPE or not isinstance(data, dict):
        return None
    original: CloudEvent | None = None
    if data.get("event") is not None:
        try:
            original = CloudEvent.from_dict(data["event"])
        except InvalidEvent:
            original = None
    return DeadLetter(
        id=event.id,
        topic=str(data.get("topic", "")),
        group=str(data.get("group", "")),
        attempts=int(data.get("attempts", 0)),
        error=str(data.get("error", "")),
        time=event.time,
        event=original,
        raw=data.get("raw"),
        handle=handle,
    )


def select(
    letters: list[DeadLetter], *, group: str | None, ids: set[str] | None = None
) -> list[DeadLetter]:
    """The letters of ``group`` (every group when ``None``), restricted to ``ids``."""
    return [
        letter
        for letter in letters
        if (group is None or letter.group == group) and (ids is None or letter.id in ids)
    ]
