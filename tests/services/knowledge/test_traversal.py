"""Neighbours by depth, direction and type; learning paths in prerequisite order."""

from __future__ import annotations

from tests.services.knowledge.helpers import BASE


async def _load(client, headers, nodes, edges) -> dict[str, str]:
    body = {
        "nodes": [{"key": k, "type": t, "name": k} for k, t in nodes],
        "edges": [{"source": s, "target": t, "type": kind} for s, t, kind in edges],
    }
    response = await client.post(f"{BASE}/import", json=body, headers=headers)
    assert response.status_code == 200, response.text
    ids: dict[str, str] = response.json()["ids"]
    return ids


async def test_neighbors_by_depth_direction_and_type(client, admin_headers) -> None:
    # a -> b -> c -> d, a -> c (a shortcut), e -> a, b -cites-> f
    ids = await _load(
        client, admin_headers,
        [("a", "t"), ("b", "t"), ("c", "t"), ("d", "u"), ("e", "t"), ("f", "t")],
        [("a", "b", "link"), ("b", "c", "link"), ("c", "d", "link"), ("a", "c", "link"),
         ("e", "a", "link"), ("b", "f", "cites")],
    )  # fmt: skip
    name = {v: k for k, v in ids.items()}

    async def around(**params) -> list[str]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        response = await client.get(
            f"{BASE}/nodes/{ids['a']}/neighbors?{query}", headers=admin_headers
        )
        assert response.status_code == 200, response.text
        return [name[n["id"]] for n in response.json()["data"]]

    assert await around(direction="out") == ["b", "c"]
    assert await around(direction="in") == ["e"]
    assert await around() == ["b", "c", "e"]  # both directions by default
    assert await around(direction="out", depth=2) == ["b", "c", "d", "f"]  # c once
    assert await around(direction="out", depth=3, type="link") == ["b", "c", "d"]
    assert await around(direction="out", depth=3, node_type="u") == ["d"]
    assert await around(direction="both", depth=5) == ["b", "c", "e", "d", "f"]
    assert await around(direction="out", depth=5, limit=2) == ["b", "c"]
    bad = await client.get(f"{BASE}/nodes/{ids['a']}/neighbors?depth=0", headers=admin_headers)
    assert bad.status_code == 422
    missing = await client.get(f"{BASE}/nodes/nope/neighbors", headers=admin_headers)
    assert missing.status_code == 404


async def test_learning_path_orders_prerequisites(client, admin_headers) -> None:
    # ml requires linear-algebra and stats; stats requires calculus and probability;
    # probability requires calculus; linear-algebra requires arithmetic.
    ids = await _load(
        client, admin_headers,
        [(k, "skill") for k in ("ml", "linalg", "stats", "calculus", "probability", "arithmetic",
                                "unrelated")],
        [("ml", "linalg", "requires"), ("ml", "stats", "requires"),
         ("stats", "calculus", "requires"), ("stats", "probability", "requires"),
         ("probability", "calculus", "requires"), ("linalg", "arithmetic", "requires"),
         ("ml", "unrelated", "related")],
    )  # fmt: skip
    name = {v: k for k, v in ids.items()}

    async def path(goal: str, known: list[str] = ()) -> list[str]:
        query = f"goal={ids[goal]}"
        if known:
            query += "&known=" + ",".join(ids[k] for k in known)
        response = await client.get(f"{BASE}/learning-path?{query}", headers=admin_headers)
        assert response.status_code == 200, response.text
        return [name[n["id"]] for n in response.json()["data"]]

    order = await path("ml")
    assert order[-1] == "ml"
    assert set(order) == {"ml", "linalg", "stats", "calculus", "probability", "arithmetic"}
    position = {n: i for i, n in enumerate(order)}
    for needs, needed in (("ml", "linalg"), ("ml", "stats"), ("stats", "calculus"),
                          ("stats", "probability"), ("probability", "calculus"),
                          ("linalg", "arithmetic")):  # fmt: skip
        assert position[needed] < position[needs], order
    assert order == ["arithmetic", "linalg", "calculus", "probability", "stats", "ml"]
    # What is known is left out, and so is what only it requires.
    assert await path("ml", ["stats", "linalg"]) == ["ml"]
    assert await path("ml", ["probability"]) == ["arithmetic", "linalg", "calculus", "stats", "ml"]
    assert await path("calculus") == ["calculus"]


async def test_a_prerequisite_cycle_is_409_naming_it(client, admin_headers) -> None:
    ids = await _load(
        client, admin_headers,
        [(k, "skill") for k in ("goal", "x", "y", "z")],
        [("goal", "x", "requires"), ("x", "y", "requires"), ("y", "z", "requires"),
         ("z", "x", "requires")],
    )  # fmt: skip
    response = await client.get(f"{BASE}/learning-path?goal={ids['goal']}", headers=admin_headers)
    assert response.status_code == 409, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert {e["msg"] for e in problem["errors"]} == {ids["x"], ids["y"], ids["z"]}
    for key in ("x", "y", "z"):
        assert ids[key] in problem["detail"]
    assert ids["goal"] not in problem["detail"]
    # Knowing a node of the cycle breaks it.
    known = await client.get(
        f"{BASE}/learning-path?goal={ids['goal']}&known={ids['y']}", headers=admin_headers
    )
    assert known.status_code == 200
    assert [n["name"] for n in known.json()["data"]] == ["x", "goal"]
