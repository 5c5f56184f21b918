"""DataLoaders: the references of a whole page resolved in a bounded number of REST calls.

A page of N workflows asking for their executions costs ONE call
(``GET /api/v1/executions?workflow_id=a,b,c&per_workflow=k``), not N; executions asking
for their workflow cost one ``GET /api/v1/workflows?id=a,b,c`` (none when the page of
workflows already holds them: lists prime the loader).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from orchestrion.gateway.graphql.calls import Calls, Problem

#: What one REST list call may hold (the list conventions' cap) and so ids per call.
BATCH = 100
ExecutionsKey = tuple[str, int, str | None]


def _chunks(values: Sequence[str], size: int = BATCH) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


class Loaders:
    """The loaders of one operation (or, uncached, of one socket)."""

    def __init__(self, calls: Calls, *, cache: bool = True) -> None:
        self.calls = calls
        self.workflow = DataLoader[str, dict[str, Any] | None](
            load_fn=self._workflows, cache=cache, max_batch_size=BATCH
        )
        self.execution = DataLoader[str, dict[str, Any] | None](
            load_fn=self._executions, cache=cache
        )
        self.executions_of = DataLoader[ExecutionsKey, list[dict[str, Any]]](
            load_fn=self._executions_of, cache=cache
        )

    def prime_workflows(self, items: Iterable[dict[str, Any]]) -> None:
        """Workflows a list already fetched: no call for them later."""
        for item in items:
            self.workflow.prime(item["id"], item)

    def prime_executions(self, items: Iterable[dict[str, Any]]) -> None:
        """Executions a list already fetched."""
        for item in items:
            self.execution.prime(item["id"], item)

    async def _workflows(self, ids: list[str]) -> list[dict[str, Any] | None]:
        found: dict[str, dict[str, Any]] = {}
        pages = await asyncio.gather(
            *(
                self.calls.get("/api/v1/workflows", {"id": ",".join(chunk), "limit": BATCH})
                for chunk in _chunks(ids)
            )
        )
        for page in pages:
            found.update({item["id"]: item for item in page["data"]})
        return [found.get(i) for i in ids]

    async def _executions(self, ids: list[str]) -> list[dict[str, Any] | None]:
        async def one(execution_id: str) -> dict[str, Any] | None:
            try:
                body: dict[str, Any] = await self.calls.get(f"/api/v1/executions/{execution_id}")
            except Problem as problem:
                if problem.status == 404:
                    return None
                raise
            return body

        return list(await asyncio.gather(*(one(i) for i in ids)))

    async def _executions_of(self, keys: list[ExecutionsKey]) -> list[list[dict[str, Any]]]:
        """One call per distinct (count, status) over every workflow asking for it."""
        groups: dict[tuple[int, str | None], list[str]] = {}
        for workflow_id, first, status in keys:
            groups.setdefault((first, status), []).append(workflow_id)
        found: dict[ExecutionsKey, list[dict[str, Any]]] = {}

        async def fetch(first: int, status: str | None, ids: list[str]) -> None:
            page = await self.calls.get(
                "/api/v1/executions",
                {
                    "workflow_id": ",".join(ids),
                    "per_workflow": first,
                    "status": status,
                    "sort": "created_at:desc",
                },
            )
            for item in page["data"]:
                found.setdefault((item["workflow_id"], first, status), []).append(item)
            self.prime_executions(page["data"])

        await asyncio.gather(
            *(
                fetch(first, status, chunk)
                for (first, status), ids in groups.items()
                for chunk in _chunks(list(dict.fromkeys(ids)))
            )
        )
        return [found.get(key, []) for key in keys]
