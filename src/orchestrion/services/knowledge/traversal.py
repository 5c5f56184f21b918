"""Rules of traversals that follow edges in the database: neighbours and learning paths.

They read only the part of the graph they walk, one query per level (``IN`` over the
frontier), with the edge indexes on ``(source, type)`` and ``(target, type)``; nothing
is loaded whole.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.knowledge import repository
from orchestrion.services.knowledge.errors import PrerequisiteCycle
from orchestrion.services.knowledge.models import KgNode
from orchestrion.services.knowledge.repository import Direction
from orchestrion.services.knowledge.service import get_node

REQUIRES = "requires"


async def neighbors(
    session: AsyncSession,
    *,
    principal: Principal,
    node_id: str,
    depth: int,
    direction: Direction,
    edge_type: str | None,
    node_type: str | None,
    limit: int,
) -> list[KgNode]:
    """Nodes within ``depth`` edges, each once, nearest first (then by name)."""
    start = await get_node(session, principal=principal, node_id=node_id)
    level_of: dict[str, int] = {start.id: 0}
    frontier = [start.id]
    for level in range(1, depth + 1):
        if not frontier:
            break
        found = await repository.steps(
            session,
            tenant_id=principal.tenant_id,
            frontier=frontier,
            direction=direction,
            edge_type=edge_type,
        )
        frontier = []
        for _, far in found:
            if far not in level_of:
                level_of[far] = level
                frontier.append(far)
        # Nearer levels sort first, so once they fill the page deeper ones cannot show.
        if node_type is None and len(level_of) > limit:
            break
    del level_of[start.id]
    nodes = await repository.nodes_by_id(session, tenant_id=principal.tenant_id, ids=level_of)
    chosen = [n for n in nodes.values() if node_type is None or n.type == node_type]
    chosen.sort(key=lambda n: (level_of[n.id], n.name, n.id))
    return chosen[:limit]


async def learning_path(
    session: AsyncSession, *, principal: Principal, goal_id: str, known: set[str]
) -> list[KgNode]:
    """The goal's prerequisites, each after its own, known ones (and what only they
    require) left out, the goal last; 409 naming the nodes of a cycle."""
    goal = await get_node(session, principal=principal, node_id=goal_id)
    requires: dict[str, list[str]] = {}
    frontier = [goal.id]
    while frontier:
        found = await repository.steps(
            session,
            tenant_id=principal.tenant_id,
            frontier=frontier,
            direction="out",
            edge_type=REQUIRES,
        )
        frontier = []
        for node, prerequisite in found:
            if prerequisite in known and prerequisite != goal.id:
                continue
            requires.setdefault(node, []).append(prerequisite)
            if prerequisite not in requires:
                requires[prerequisite] = []
                frontier.append(prerequisite)
    requires.setdefault(goal.id, [])
    nodes = await repository.nodes_by_id(session, tenant_id=principal.tenant_id, ids=requires)
    for prerequisites in requires.values():
        prerequisites.sort(key=lambda n: (nodes[n].name, n))
    return [nodes[n] for n in _order(goal.id, requires, nodes)]


def _order(goal: str, requires: dict[str, list[str]], nodes: dict[str, KgNode]) -> list[str]:
    """Depth-first post-order from ``goal``: every node after what it requires."""
    order: list[str] = []
    done: set[str] = set()
    on_path: list[str] = [goal]
    on_path_set = {goal}
    stack = [(goal, iter(requires[goal]))]
    while stack:
        node, pending = stack[-1]
        following = next(pending, None)
        if following is None:
            stack.pop()
            on_path_set.discard(on_path.pop())
            done.add(node)
            order.append(node)
        elif following in done:
            continue
        elif following in on_path_set:
            cycle = on_path[on_path.index(following) :]
            described = " → ".join(f"{nodes[n].name} ({n})" for n in [*cycle, following])
            raise PrerequisiteCycle(
                f"prerequisites form a cycle: {described}",
                errors=[{"loc": ["cycle", i], "msg": n} for i, n in enumerate(cycle)],
            )
        else:
            on_path.append(following)
            on_path_set.add(following)
            stack.append((following, iter(requires[following])))
    return order
