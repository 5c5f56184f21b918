"""Bulk import is all or nothing; exports round-trip through the API and NetworkX."""

from __future__ import annotations

import json

import networkx as nx

from tests.conftest import user_headers
from tests.services.knowledge.helpers import BASE, node

GRAPH = {
    "nodes": [
        {"key": "py", "type": "language", "name": "Python", "text": "A language.",
         "properties": {"year": 1991}},
        {"key": "nx", "type": "library", "name": "NetworkX"},
        {"key": "np", "type": "library", "name": "NumPy & <arrays>"},
    ],
    "edges": [
        {"source": "nx", "target": "py", "type": "written_in", "weight": 2.0},
        {"source": "nx", "target": "np", "type": "uses"},
        {"source": "nx", "target": "np", "type": "uses", "weight": 0.5,
         "properties": {"optional": True}},
    ],
}  # fmt: skip


async def _totals(client, headers) -> tuple[int, int]:
    nodes = await client.get(f"{BASE}/nodes", headers=headers)
    edges = await client.get(f"{BASE}/edges", headers=headers)
    return nodes.json()["meta"]["total"], edges.json()["meta"]["total"]


async def test_import_stores_everything_and_maps_keys(client, admin_headers) -> None:
    response = await client.post(f"{BASE}/import", json=GRAPH, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["nodes"], body["edges"]) == (3, 3)
    assert set(body["ids"]) == {"py", "nx", "np"}
    python = await client.get(f"{BASE}/nodes/{body['ids']['py']}", headers=admin_headers)
    assert python.json()["properties"] == {"year": 1991}
    out = await client.get(f"{BASE}/edges?source={body['ids']['nx']}", headers=admin_headers)
    assert sorted(e["weight"] for e in out.json()["data"]) == [0.5, 1.0, 2.0]

    # A second import may link to nodes that exist already, by id.
    more = {
        "nodes": [{"key": "pd", "type": "library", "name": "pandas"}],
        "edges": [{"source": "pd", "target": body["ids"]["np"], "type": "uses"}],
    }
    again = await client.post(f"{BASE}/import", json=more, headers=admin_headers)
    assert again.status_code == 200, again.text
    assert await _totals(client, admin_headers) == (4, 4)


async def test_an_unknown_key_stores_nothing(client, admin_headers) -> None:
    await node(client, admin_headers, "Existing")
    bad = json.loads(json.dumps(GRAPH))
    bad["edges"].append({"source": "nx", "target": "rust", "type": "uses"})
    response = await client.post(f"{BASE}/import", json=bad, headers=admin_headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert "'rust'" in problem["detail"]
    assert problem["errors"] == [
        {"loc": ["body", "edges", 3, "target"], "msg": "unknown node key 'rust'"}
    ]
    assert await _totals(client, admin_headers) == (1, 0)
    search = await client.post(f"{BASE}/search", json={"query": "python"}, headers=admin_headers)
    assert search.json()["data"] == []

    duplicate = json.loads(json.dumps(GRAPH))
    duplicate["nodes"].append({"key": "py", "type": "x", "name": "again"})
    response = await client.post(f"{BASE}/import", json=duplicate, headers=admin_headers)
    assert response.status_code == 422
    assert "duplicate key 'py'" in response.json()["errors"][0]["msg"]
    invalid = {"nodes": [{"key": "a", "type": "x"}], "edges": []}  # no name
    assert (
        await client.post(f"{BASE}/import", json=invalid, headers=admin_headers)
    ).status_code == 422
    assert await _totals(client, admin_headers) == (1, 0)


async def test_json_export_imports_as_it_is(client, admin_headers, tmp_path) -> None:
    await client.post(f"{BASE}/import", json=GRAPH, headers=admin_headers)
    exported = await client.get(f"{BASE}/export?format=json", headers=admin_headers)
    assert exported.status_code == 200
    data = exported.json()
    assert len(data["nodes"]) == 3
    assert len(data["edges"]) == 3
    assert all(n["key"] == n["id"] for n in data["nodes"])

    # Into another tenant: the same graph, new ids.
    tenant = await client.post("/api/v1/auth/tenants", json={"name": "copy"}, headers=admin_headers)
    other = await user_headers(
        client, admin_headers, email="c@copy.test", roles=["editor"], tenant_id=tenant.json()["id"]
    )
    body = {
        "nodes": [{k: n[k] for k in ("key", "type", "name", "text", "properties")}
                  for n in data["nodes"]],
        "edges": [{k: e[k] for k in ("source", "target", "type", "weight", "properties")}
                  for e in data["edges"]],
    }  # fmt: skip
    copied = await client.post(f"{BASE}/import", json=body, headers=other)
    assert copied.status_code == 200, copied.text
    again = (await client.get(f"{BASE}/export", headers=other)).json()

    def shape(export):
        names = {n["id"]: n["name"] for n in export["nodes"]}
        return (
            sorted((n["name"], n["type"], n["text"], json.dumps(n["properties"]))
                   for n in export["nodes"]),
            sorted((names[e["source"]], names[e["target"]], e["type"], e["weight"],
                    json.dumps(e["properties"])) for e in export["edges"]),
        )  # fmt: skip

    assert shape(again) == shape(data)


async def test_graphml_export_reads_in_networkx(client, admin_headers, tmp_path) -> None:
    ids = (await client.post(f"{BASE}/import", json=GRAPH, headers=admin_headers)).json()["ids"]
    response = await client.get(f"{BASE}/export?format=graphml", headers=admin_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/graphml+xml")
    path = tmp_path / "graph.graphml"
    path.write_bytes(response.content)
    graph = nx.read_graphml(path)
    assert isinstance(graph, nx.MultiDiGraph)
    assert set(graph.nodes) == set(ids.values())
    assert graph.nodes[ids["np"]]["name"] == "NumPy & <arrays>"
    assert graph.nodes[ids["py"]]["type"] == "language"
    assert json.loads(graph.nodes[ids["py"]]["properties"]) == {"year": 1991}
    assert graph.number_of_edges(ids["nx"], ids["np"]) == 2
    weights = sorted(d["weight"] for _, _, d in graph.edges(ids["nx"], data=True))
    assert weights == [0.5, 1.0, 2.0]
    edge_ids = {key for _, _, key in graph.edges(keys=True)}
    listed = (await client.get(f"{BASE}/edges", headers=admin_headers)).json()["data"]
    assert edge_ids == {e["id"] for e in listed}
    assert (await client.get(f"{BASE}/export?format=csv", headers=admin_headers)).status_code == 422
