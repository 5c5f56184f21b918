"""Request and response shapes of the knowledge service."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrion.services.knowledge.models import NAME_LENGTH, TYPE_LENGTH

T = TypeVar("T")
#: The most nodes (and, separately, edges) one import may carry.
MAX_IMPORT_ITEMS = 200_000

TypeName = Field(min_length=1, max_length=TYPE_LENGTH)
NodeName = Field(min_length=1, max_length=NAME_LENGTH)


def _finite_weight(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("weight must be a finite number >= 0")
    return value


class Node(BaseModel):
    """A node as the API shows it."""

    id: str
    tenant_id: str
    type: str
    name: str
    text: str
    properties: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class NodeCreate(BaseModel):
    """A new node."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "concept",
                    "name": "Graph theory",
                    "properties": {"level": "intermediate"},
                    "text": "The study of graphs: vertices joined by edges.",
                }
            ]
        },
    )

    type: str = TypeName
    name: str = NodeName
    properties: dict[str, Any] = Field(default_factory=dict)
    text: str = ""


class NodeUpdate(BaseModel):
    """Fields to replace on a node (``properties`` is replaced whole, not merged)."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, min_length=1, max_length=TYPE_LENGTH)
    name: str | None = Field(default=None, min_length=1, max_length=NAME_LENGTH)
    properties: dict[str, Any] | None = None
    text: str | None = None


class Edge(BaseModel):
    """An edge as the API shows it."""

    id: str
    tenant_id: str
    source: str
    target: str
    type: str
    weight: float
    properties: dict[str, Any]
    created_at: datetime


class EdgeCreate(BaseModel):
    """A new edge between two nodes of the caller's tenant."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source": "01a23ae2-abcd-7041-bb8b-5ef56c95b41a",
                    "target": "01a23ae2-dcba-7041-bb8b-5ef56c95b41b",
                    "type": "prerequisite_of",
                    "weight": 1.0,
                }
            ]
        },
    )

    source: str = Field(min_length=1, max_length=36)
    target: str = Field(min_length=1, max_length=36)
    type: str = TypeName
    weight: float = 1.0
    properties: dict[str, Any] = Field(default_factory=dict)

    _weight = field_validator("weight")(_finite_weight)


class ImportNode(NodeCreate):
    """A node of an import, named by a key the import's edges refer to."""

    key: str = Field(min_length=1, max_length=200)


class ImportEdge(BaseModel):
    """An edge of an import: ends are keys of this import (or ids of existing nodes)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)
    type: str = TypeName
    weight: float = 1.0
    properties: dict[str, Any] = Field(default_factory=dict)

    _weight = field_validator("weight")(_finite_weight)


class ImportRequest(BaseModel):
    """A bulk import, stored all or nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "nodes": [
                        {"key": "sets", "type": "concept", "name": "Set theory"},
                        {"key": "graphs", "type": "concept", "name": "Graph theory"},
                    ],
                    "edges": [{"source": "sets", "target": "graphs", "type": "prerequisite_of"}],
                }
            ]
        },
    )

    nodes: list[ImportNode] = Field(default_factory=list, max_length=MAX_IMPORT_ITEMS)
    edges: list[ImportEdge] = Field(default_factory=list, max_length=MAX_IMPORT_ITEMS)


class ImportResult(BaseModel):
    """What an import stored, and the id each key became."""

    nodes: int
    edges: int
    ids: dict[str, str]


class ExportNode(Node):
    """A node of a JSON export; ``key`` (its id) makes the export importable as it is."""

    key: str


class GraphExport(BaseModel):
    """A tenant's whole graph as JSON."""

    nodes: list[ExportNode]
    edges: list[Edge]


class NodeData(BaseModel):
    """A set of nodes (neighbours, a learning path)."""

    data: list[Node]


class GraphPath(BaseModel):
    """A path: its nodes in order, the edges between them, and the sum of their weights."""

    nodes: list[str]
    edges: list[str]
    cost: float


class Score(BaseModel):
    """A node's PageRank."""

    node_id: str
    score: float


class ScoreData(BaseModel):
    """PageRank scores, highest first."""

    data: list[Score]


class Community(BaseModel):
    """A community: its id (largest first) and member node ids."""

    id: str
    nodes: list[str]


class CommunityData(BaseModel):
    """The communities of the graph."""

    data: list[Community]


class SearchRequest(BaseModel):
    """A search over the names and texts of nodes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "graph theory", "mode": "keyword", "limit": 5}]},
    )

    query: str = Field(min_length=1, max_length=1000)
    mode: Literal["keyword", "semantic", "hybrid"] = "keyword"
    limit: int = Field(default=10, ge=1, le=100)


class Hit(BaseModel):
    """A node found by search or similarity, with its score."""

    node_id: str
    name: str
    score: float


class HitData(BaseModel):
    """Hits, best first."""

    data: list[Hit]
