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

from orchestrion.kernel.http.bodylimits import DepthScanner, JsonDepthMiddleware
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
@given(json_values, st.integers(min_value=1, max_value=7), st.data())
def test_the_scanner_counts_depth_across_chunks_and_strings(
    value: Any, max_depth: int, data: st.DataObject
) -> None:
    raw = json.dumps(value).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=4)))
    scanner = DepthScanner(max_depth)
    ok = all(scanner.feed(raw[a:b]) for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True))
    assert ok == (_depth(value) <= max_depth)


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
