"""Queries and mutations through a real GraphQL client against a real server."""

from __future__ import annotations

import copy
from typing import Any

from tests.fixtures.definitions import DOUBLE_THEN_ADD
from tests.gateway.graphql.conftest import Platform, create_workflow, run

CREATE = """
mutation Create($definition: JSON!) {
  createWorkflow(input: {definition: $definition}) { id name version status tags steps }
}
"""
EXECUTE = """
mutation Run($id: ID!, $inputs: JSON!) {
  executeWorkflow(id: $id, inputs: $inputs, wait: 10) {
    id status outputs error workflow { id name } steps { id status attempts output }
  }
}
"""
PAGE = """
query Page($filter: WorkflowFilter, $pagination: PaginationInput, $sort: [SortInput!]) {
  workflows(filter: $filter, pagination: $pagination, sort: $sort) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name tags } }
  }
}
"""


def named(name: str, tags: list[str] | None = None) -> dict[str, Any]:
    definition = copy.deepcopy(DOUBLE_THEN_ADD)
    definition["name"] = name
    definition["tags"] = tags or ["demo"]
    return definition


async def test_create_execute_and_read_back(platform: Platform) -> None:
    created = (await platform.query(CREATE, {"definition": named("g-one")}))["createWorkflow"]
    assert created["name"] == "g-one"
    assert created["version"] == 1
    assert [s["id"] for s in created["steps"]] == ["double", "add"]

    ran = await platform.query(EXECUTE, {"id": created["id"], "inputs": {"x": 20}})
    execution = ran["executeWorkflow"]
    assert execution["status"] == "succeeded"
    assert execution["outputs"] == {"result": 41}
    assert execution["workflow"] == {"id": created["id"], "name": "g-one"}
    assert [(s["id"], s["status"], s["output"]) for s in execution["steps"]] == [
        ("double", "succeeded", {"value": 40}),
        ("add", "succeeded", {"value": 41}),
    ]

    read = await platform.query(
        """query($id: ID!, $e: ID!) {
          workflow(id: $id) { id name executions { id status outputs } }
          execution(id: $e) { id status steps { id } events(limit: 2) { seq type } }
        }""",
        {"id": created["id"], "e": execution["id"]},
    )
    assert read["workflow"]["executions"] == [
        {"id": execution["id"], "status": "succeeded", "outputs": {"result": 41}}
    ]
    assert [e["seq"] for e in read["execution"]["events"]] == [1, 2]


async def test_invalid_definition_is_a_named_error(platform: Platform) -> None:
    bad = named("g-bad")
    bad["steps"][1]["needs"] = ["missing"]
    async with platform.client() as session:
        from gql import GraphQLRequest
        from gql.transport.exceptions import TransportQueryError

        try:
            await session.execute(GraphQLRequest(CREATE, variable_values={"definition": bad}))
        except TransportQueryError as exc:
            error = exc.errors[0] if exc.errors else {}
        else:
            raise AssertionError("an invalid definition was accepted")
    assert error["extensions"]["code"] == "UNPROCESSABLE"
    assert error["extensions"]["status"] == 422
    assert "add" in str(error)  # the step is named


async def test_pagination_sort_and_filter(platform: Platform) -> None:
    for index in range(5):
        await create_workflow(platform, named(f"page-{index}", ["paged"]))
    await create_workflow(platform, named("other", ["elsewhere"]))

    sort = [{"field": "name", "direction": "ASC"}]
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = await platform.query(
            PAGE,
            {"filter": {"tag": "paged"}, "pagination": {"limit": 2, "after": after}, "sort": sort},
        )
        connection = data["workflows"]
        assert connection["totalCount"] == 5
        seen += [edge["node"]["name"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == [f"page-{i}" for i in range(5)]
    assert pages == 3

    # Any edge's cursor resumes right after it.
    first = (await platform.query(PAGE, {"filter": {"tag": "paged"}, "sort": sort}))["workflows"]
    middle = first["edges"][1]["cursor"]
    rest = await platform.query(
        PAGE, {"filter": {"tag": "paged"}, "sort": sort, "pagination": {"after": middle}}
    )
    assert [e["node"]["name"] for e in rest["workflows"]["edges"]] == ["page-2", "page-3", "page-4"]

    descending = await platform.query(
        PAGE,
        {"filter": {"tag": "paged"}, "sort": [{"field": "name", "direction": "DESC"}],
         "pagination": {"limit": 1}},
    )  # fmt: skip
    assert descending["workflows"]["edges"][0]["node"]["name"] == "page-4"

    by_name = await platform.query(PAGE, {"filter": {"name": "other"}})
    assert [e["node"]["tags"] for e in by_name["workflows"]["edges"]] == [["elsewhere"]]


async def test_a_page_of_workflows_with_executions_costs_two_calls(platform: Platform) -> None:
    ids = []
    for index in range(6):
        workflow = await create_workflow(platform, named(f"batch-{index}", ["batch"]))
        ids.append(workflow["id"])
        for x in range(2):
            await run(platform, workflow["id"], {"x": x})
    platform.workflows.paths.clear()

    data = await platform.query(
        """{
          workflows(filter: {tag: "batch"}, pagination: {limit: 6}) {
            edges { node {
              id name
              executions(first: 5) { id status steps { id status } workflow { id name } }
            } }
          }
        }"""
    )
    nodes = [edge["node"] for edge in data["workflows"]["edges"]]
    assert len(nodes) == 6
    for node in nodes:
        assert len(node["executions"]) == 2
        assert {e["workflow"]["id"] for e in node["executions"]} == {node["id"]}
        assert all(len(e["steps"]) == 2 for e in node["executions"])
    # One list of workflows, one batch of executions: not 1 + 6 (+ 12 for the workflows).
    assert platform.workflows.paths == ["/api/v1/workflows", "/api/v1/executions"]


async def test_executions_connection_filters_by_workflow(platform: Platform) -> None:
    one = await create_workflow(platform, named("ex-one"))
    two = await create_workflow(platform, named("ex-two"))
    for x in range(3):
        await run(platform, one["id"], {"x": x})
    await run(platform, two["id"], {"x": 1})
    data = await platform.query(
        """query($w: ID!) {
          executions(filter: {workflowId: $w, status: "succeeded"},
                     sort: [{field: "createdAt", direction: DESC}]) {
            totalCount edges { node { workflowId outputs } }
          }
        }""",
        {"w": one["id"]},
    )
    connection = data["executions"]
    assert connection["totalCount"] == 3
    assert [e["node"]["outputs"]["result"] for e in connection["edges"]] == [5, 3, 1]


async def test_content_knowledge_and_templates(platform: Platform) -> None:
    headers = platform.headers
    content = await platform.http.post(
        "/api/v1/content",
        json={"text": "Queries compose REST calls.", "title": "note", "tags": ["g"]},
        headers=headers,
    )
    assert content.status_code == 201, content.text
    node = await platform.http.post(
        "/api/v1/knowledge/nodes", json={"type": "concept", "name": "graphql"}, headers=headers
    )
    assert node.status_code == 201, node.text
    data = await platform.query(
        """query($c: ID!, $n: ID!) {
          contents(filter: {tag: "g"}) { totalCount edges { node { id title contentType } } }
          content(id: $c) { id title tags }
          knowledgeNodes(filter: {type: "concept", name: "graphql"}) {
            totalCount nodes { id name }
          }
          knowledgeNode(id: $n) { name type }
          templates(filter: {visibility: "public"}, pagination: {limit: 3}) {
            totalCount pageInfo { hasNextPage }
            edges { node { id name visibility rating { count } } }
          }
        }""",
        {"c": content.json()["id"], "n": node.json()["id"]},
    )
    assert data["contents"]["totalCount"] == 1
    assert data["content"] == {"id": content.json()["id"], "title": "note", "tags": ["g"]}
    assert data["knowledgeNodes"]["nodes"] == [{"id": node.json()["id"], "name": "graphql"}]
    assert data["knowledgeNode"] == {"name": "graphql", "type": "concept"}
    templates = data["templates"]
    assert templates["totalCount"] >= 8  # the starter templates
    assert templates["pageInfo"]["hasNextPage"] is True
    assert {e["node"]["visibility"] for e in templates["edges"]} == {"public"}
