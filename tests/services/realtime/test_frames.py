"""The frame parser under fuzzing: any text is a frame or an ``invalid_frame``/``bad_frame``
error, never a crash, and what it accepts can be sent back to any client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrion.services.realtime.errors import BadFrame
from orchestrion.services.realtime.schemas import (
    MAX_DEPTH,
    dumps,
    error_frame,
    parse_frame,
    peek_ref,
)
from tests.services.realtime.conftest import StartRealtime, recv

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TYPES = ["auth", "subscribe", "unsubscribe", "publish", "presence", "ping", "launch"]

# Every code point, lone surrogates included (JSON text can spell them as \udXXX escapes).
strings = st.text(st.characters(codec=None), max_size=12)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | strings
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=40,
)
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "channel": st.sampled_from(["tenant", "room:a", "user:u", "execution:e"]) | strings,
        "data": values,
        "ref": st.integers() | strings,
        "state": st.sampled_from(["online", "away"]) | strings,
        "after": st.integers(),
        "token": strings,
    },
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _not_json(name: str) -> Any:
    raise AssertionError(f"the server would send {name}, which is not JSON")


def _answer(text: str) -> str:
    """What the server would send back for ``text``, as UTF-8 (raises if it cannot)."""
    try:
        frame = parse_frame(text)
    except BadFrame as exc:
        return error_frame(exc.code, exc.message, peek_ref(text))
    echoed = frame.model_dump()
    assert _depth(echoed) <= MAX_DEPTH
    return dumps(echoed)


@FUZZ
@given(st.text(st.characters(codec=None)))
def test_any_text_is_a_frame_or_an_error(text: str) -> None:
    answer = json.loads(_answer(text).encode(), parse_constant=_not_json)
    try:
        is_object = isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        is_object = False
    if not is_object:
        assert answer["code"] == "invalid_frame"


@FUZZ
@given(frames)
def test_json_frames_are_answered_with_sendable_text(frame: dict[str, Any]) -> None:
    # json.dumps writes NaN/Infinity for non-finite floats and \udXXX for lone surrogates:
    # both must be refused, never stored and fanned out to clients.
    text = json.dumps(frame)
    answer = json.loads(_answer(text).encode(), parse_constant=_not_json)
    assert isinstance(answer, dict)


@FUZZ
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_an_invalid_frame(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = '{"type":"publish","channel":"tenant","data":' + opener * depth + "1" + closer * depth
    text += "}"
    if depth + 1 > MAX_DEPTH:
        with pytest.raises(BadFrame) as refused:
            parse_frame(text)
        assert refused.value.code == "invalid_frame"
    else:
        parse_frame(text)
    assert peek_ref(text) is None


async def test_strict_json_errors_keep_the_socket_open(start_realtime: StartRealtime) -> None:
    server = await start_realtime()
    nasty = [
        '{"type":"publish","channel":"tenant","data":NaN,"ref":1}',
        '{"type":"publish","channel":"tenant","data":-Infinity,"ref":1}',
        '{"type":"publish","channel":"tenant","data":1,"data":2,"ref":1}',
        '{"type":"publish","channel":"tenant","data":"\\ud800","ref":1}',
        '{"type":"ping","ref":"\\udfff"}',
        '{"type":"publish","channel":"tenant","data":' + "[" * 40 + "]" * 40 + "}",
        '{"type":"publish","channel":"tenant","data":' + "[" * 20_000,
        "[" * 30_000,
        "[1, 2]",
        '"a string"',
        "null",
    ]
    async with server.connect("ann") as ann, server.connect("bob") as bob:
        await recv(ann)
        await recv(bob)
        await ann.send(json.dumps({"type": "subscribe", "channel": "tenant"}))
        await recv(ann)
        for text in nasty:
            await bob.send(text)
            answer = await recv(bob)
            assert (answer["type"], answer["code"]) == ("error", "invalid_frame"), text
            assert "Traceback" not in answer["message"]
        await bob.send('{"type":"ping","ref":"still here"}')
        assert await recv(bob) == {"type": "pong", "ref": "still here"}
        # Nothing reached the subscriber but the one valid message.
        await bob.send('{"type":"publish","channel":"tenant","data":"fine"}')
        assert (await recv(ann))["data"] == "fine"
