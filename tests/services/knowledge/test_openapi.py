"""Every knowledge route is in the gateway's OpenAPI document with a typed response and
its problem statuses."""

from __future__ import annotations


async def test_routes_declare_models_and_problems(client) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = {p: v for p, v in response.json()["paths"].items() if "/knowledge/" in p}
    expected = {
        ("post", "/api/v1/knowledge/nodes"): {"201", "401", "403", "422"},
        ("get", "/api/v1/knowledge/nodes"): {"200", "400"},
        ("get", "/api/v1/knowledge/nodes/{node_id}"): {"200", "404"},
        ("patch", "/api/v1/knowledge/nodes/{node_id}"): {"200", "404", "412", "422"},
        ("delete", "/api/v1/knowledge/nodes/{node_id}"): {"204", "404"},
        ("post", "/api/v1/knowledge/edges"): {"201", "422"},
        ("get", "/api/v1/knowledge/edges"): {"200"},
        ("post", "/api/v1/knowledge/import"): {"200", "422"},
        ("get", "/api/v1/knowledge/export"): {"200"},
        ("get", "/api/v1/knowledge/nodes/{node_id}/neighbors"): {"200", "404"},
        ("get", "/api/v1/knowledge/path"): {"200", "404"},
        ("get", "/api/v1/knowledge/pagerank"): {"200"},
        ("get", "/api/v1/knowledge/communities"): {"200"},
        ("get", "/api/v1/knowledge/learning-path"): {"200", "404", "409"},
        ("post", "/api/v1/knowledge/search"): {"200", "422"},
        ("get", "/api/v1/knowledge/nodes/{node_id}/similar"): {"200", "404"},
    }
    for (method, path), statuses in expected.items():
        operation = paths[path][method]
        assert statuses <= set(operation["responses"]), (method, path)
        for status, declared in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert "application/problem+json" in declared["content"], (method, path, status)
        success = next(s for s in operation["responses"] if s.startswith("2"))
        if success != "204":
            assert operation["responses"][success]["content"]["application/json"]["schema"]
