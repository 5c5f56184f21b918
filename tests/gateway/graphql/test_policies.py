"""What guards ``/graphql``: authentication, tenancy, permissions, rate limits, depth and
cost limits, persisted queries, masked errors, and GraphiQL served offline."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from graphql import GraphQLError

from orchestrion.gateway.graphql.schema import _mask
from tests.fixtures.definitions import DOUBLE_THEN_ADD
from tests.gateway.graphql.conftest import Platform, create_workflow

Start = Callable[..., AbstractAsyncContextManager[Platform]]
ME = "{ workflows { totalCount } }"


async def errors_of(platform: Platform, document: str, **kwargs: Any) -> list[dict[str, Any]]:
    """The errors an operation answers (it must fail)."""
    variables = kwargs.pop("variables", None)
    async with platform.client(**kwargs) as session:
        with pytest.raises(TransportQueryError) as caught:
            await session.execute(GraphQLRequest(document, variable_values=variables))
    assert caught.value.errors
    return caught.value.errors


async def user(platform: Platform, email: str, roles: list[str], tenant: str | None = None) -> str:
    body: dict[str, Any] = {"email": email, "password": "user-password-1", "roles": roles}
    if tenant:
        body["tenant_id"] = tenant
    created = await platform.http.post("/api/v1/auth/users", json=body, headers=platform.headers)
    assert created.status_code == 201, created.text
    login = await platform.http.post(
        "/api/v1/auth/login", json={"email": email, "password": "user-password-1"}
    )
    assert login.status_code == 200, login.text
    return str(login.json()["access_token"])


async def test_no_token_or_a_bad_one_is_a_401(platform: Platform) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        errors = await errors_of(platform, ME, headers=headers)
        assert errors[0]["extensions"] == {"code": "UNAUTHENTICATED", "status": 401}
    raw = await platform.http.post("/graphql", json={"query": ME})
    assert raw.status_code == 401


async def test_another_tenant_sees_nothing_and_a_viewer_cannot_write(platform: Platform) -> None:
    workflow = await create_workflow(platform, DOUBLE_THEN_ADD)
    tenant = await platform.http.post(
        "/api/v1/auth/tenants", json={"name": "other"}, headers=platform.headers
    )
    assert tenant.status_code == 201, tenant.text
    outsider = await user(platform, "out@example.com", ["admin"], tenant.json()["id"])
    headers = {"Authorization": f"Bearer {outsider}"}
    errors = await errors_of(
        platform, "query($id: ID!) { workflow(id: $id) { id } }",
        variables={"id": workflow["id"]}, headers=headers,
    )  # fmt: skip
    assert errors[0]["extensions"] == {"code": "NOT_FOUND", "status": 404}
    listed = await platform.query(ME, headers=headers)
    assert listed["workflows"]["totalCount"] == 0

    viewer = await user(platform, "viewer@example.com", ["viewer"])
    errors = await errors_of(
        platform,
        "mutation($d: JSON!) { createWorkflow(input: {definition: $d}) { id } }",
        variables={"d": DOUBLE_THEN_ADD},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert "workflows:write" in errors[0]["message"]


async def test_rate_limit_counts_graphql_with_rest(start_platform: Start) -> None:
    async with start_platform(gateway={"rate_limit": "4/minute"}) as platform:
        statuses = []
        for _ in range(3):
            response = await platform.http.post(
                "/graphql", json={"query": ME}, headers=platform.headers
            )
            statuses.append(response.status_code)
            assert response.headers["RateLimit-Limit"] == "4"
        rest = await platform.http.get("/api/v1/workflows", headers=platform.headers)
        refused = await platform.http.post("/graphql", json={"query": ME}, headers=platform.headers)
    assert statuses == [200, 200, 200]
    assert rest.status_code == 200  # the fourth request of the same bucket
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


async def test_depth_and_cost_limits_name_the_limit(start_platform: Start) -> None:
    async with start_platform(graphql={"max_depth": 4, "max_cost": 500}) as platform:
        deep = await errors_of(
            platform,
            "{ workflows { edges { node { executions { workflow { executions { id } } } } } } }",
        )
        assert "maximum operation depth of 4" in deep[0]["message"]

        costly = "query($n: Int) { workflows(pagination: {limit: $n}) { nodes { id name } } }"
        assert await platform.query(costly, {"n": 100})  # 100 * (1 + 1 * (1 + 2)) = 400
        errors = await errors_of(
            platform,
            "query($n: Int) { workflows(pagination: {limit: $n}) "
            "{ nodes { id executions(first: 10) { id status } } } }",
            variables={"n": 50},
        )
    assert "maximum cost of 500" in errors[0]["message"]
    assert errors[0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    assert errors[0]["extensions"]["limit"] == 500
    assert errors[0]["extensions"]["value"] > 500


async def test_persisted_queries(platform: Platform) -> None:
    query = "query Count { workflows { totalCount } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}

    async def post(body: dict[str, Any]) -> dict[str, Any]:
        response = await platform.http.post("/graphql", json=body, headers=platform.headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    missing = await post({"extensions": persisted})
    assert missing["errors"][0]["message"] == "PersistedQueryNotFound"
    assert missing["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert (await post({"query": query, "extensions": persisted}))["data"] == {
        "workflows": {"totalCount": 0}
    }
    assert (await post({"extensions": persisted}))["data"] == {"workflows": {"totalCount": 0}}
    by_get = await platform.http.get(
        "/graphql", params={"extensions": json.dumps(persisted)}, headers=platform.headers
    )
    assert by_get.json()["data"] == {"workflows": {"totalCount": 0}}
    wrong = await post({"query": "{ workflows { totalCount } }", "extensions": persisted})
    assert wrong["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"


def test_unexpected_errors_are_masked() -> None:
    assert _mask(GraphQLError("boom", original_error=RuntimeError("db password is x")))
    assert not _mask(GraphQLError("Cannot query field 'nope' on type 'Query'."))


async def test_graphiql_is_served_without_internet(platform: Platform) -> None:
    page = await platform.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert not [s for s in sources if "//" in s]  # nothing from another host
    for source in sources:
        asset = await platform.http.get(f"/{source}")
        assert asset.status_code == 200, source
        assert asset.content  # httpx undid the gzip
    plain = await platform.http.get(
        "/graphql/assets/graphiql-start.js", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    assert gzip.decompress(gzip.compress(plain.content)) == plain.content
    assert b"createFetcher" in plain.content
