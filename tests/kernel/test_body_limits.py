"""The JSON depth guard every service runs (kernel/http/bodylimits.py), under a real server."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrion.kernel.http.bodylimits import JsonDepthMiddleware, nesting_exceeds
from tests.fixtures.servers import serve_in_thread


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text('[]"\\{', max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=7), st.booleans())
def test_nesting_is_measured_outside_strings(value: Any, max_depth: int, ascii: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii).encode()
    assert nesting_exceeds(raw, max_depth) == (_depth(value) > max_depth)


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"got": len(json.dumps(await request.json()))})


def test_deep_bodies_are_422_and_others_reach_the_app() -> None:
    app = JsonDepthMiddleware(Starlette(routes=[Route("/", _echo, methods=["POST"])]), max_depth=8)
    with serve_in_thread(app) as url:
        deep = b"[" * 200_000 + b"]" * 200_000
        refused = httpx.post(url, content=deep, headers={"Content-Type": "application/json"})
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert "limits.body_max_depth" in refused.json()["detail"]
        fine = httpx.post(url, json={"a": [[["[[[[[[[[[[ in a string"]]]})
        assert fine.status_code == 200, fine.text
        assert fine.json()["got"] > 0
