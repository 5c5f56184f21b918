"""The route table picks the longest prefix a path is, or is below (segment by segment)."""

from __future__ import annotations

import random

import pytest

from orchestrion.gateway.routes import DEFAULT_ROUTES, Route, RouteTable

EXTRA = [
    Route(prefix="/bench", service="bench"),
    Route(prefix="/x/", service="slashed"),
    Route(prefix="/api/v1/workflows/special", service="special"),
    Route(prefix="/", service="root"),
]


def _longest(routes: list[Route], path: str) -> Route | None:
    """By definition: of the routes whose prefix ``path`` is or is below, the longest."""
    fitting = [r for r in routes if r.matches(path)]
    return max(fitting, key=lambda r: len(r.prefix), default=None)


@pytest.mark.parametrize("routes", [list(DEFAULT_ROUTES), [*DEFAULT_ROUTES, *EXTRA]])
def test_the_longest_matching_prefix_wins(routes: list[Route]) -> None:
    table = RouteTable(routes)
    segments = ["api", "v1", "workflows", "special", "auth", "x", "", "bench", "benchmark",
                "ws", ".well-known", "graphql", "templates", "content", "health"]  # fmt: skip
    rng = random.Random(7)
    paths = ["", "/", "/x", "/x/", "/x/y", "/bench", "/bench/", "/benchmark", "/api/v1/workflows"]
    for _ in range(3000):
        path = "/" + "/".join(rng.choice(segments) for _ in range(rng.randint(0, 5)))
        paths.append(path + "/" if rng.random() < 0.2 else path)
    for path in paths:
        assert table.match(path) is _longest(routes, path), path


def test_a_prefix_matches_whole_segments_only() -> None:
    table = RouteTable([Route(prefix="/bench", service="bench")])
    assert table.match("/bench") is not None
    assert table.match("/bench/run") is not None
    assert table.match("/benchmark") is None
    assert table.match("/") is None
