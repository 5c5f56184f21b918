"""Limits of the runtime: what one request, one execution tree and one tenant may use.

Without them one request could fan out over hundreds of thousands of items, start
hundreds of child executions, or store outputs of any size, and a result the database
refuses would be retried by the workers forever. Each limit names its setting
(``ORCHESTRION_ENGINE__<NAME>``) when it refuses.

Exception tree (bases from :mod:`orchestrion.kernel.errors`)::

    PayloadTooLarge (413)
    └── InputsTooLarge
    TooManyRequests (429)
    └── TooManyActiveExecutions
    Conflict (409)
    └── ChildLimitReached      (a step fails with its message; never reaches HTTP)

    UnstorableValue (ValueError: a value the database would refuse)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Integer, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine.models import Execution
from orchestrion.engine.statuses import TERMINAL, ExecutionStatus
from orchestrion.kernel.errors import Conflict, PayloadTooLarge, TooManyRequests, ValidationFailed

MIB = 1024 * 1024
#: Statuses of an unfinished execution (every status but the terminal ones).
ACTIVE = tuple(status for status in ExecutionStatus if status not in TERMINAL)
#: Seconds a client refused for too many active executions is told to wait.
RETRY_AFTER_SECONDS = 10
# A NUL character, escaped by json.dumps as \u0000 (not preceded by an escaping backslash):
# PostgreSQL's JSONB refuses it, so no backend stores it.
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def setting(name: str) -> str:
    """The environment variable of the limit ``name`` (``ORCHESTRION_ENGINE__MAX_ITEMS``)."""
    return f"ORCHESTRION_ENGINE__{name.upper()}"


@dataclass(frozen=True)
class EngineLimits:
    """The runtime's limits; the defaults are the settings' (see ``EngineSettings``)."""

    max_items: int = 10_000
    max_child_executions: int = 100
    max_child_depth: int = 8
    max_active_executions: int = 1000
    max_output_bytes: int = MIB
    max_input_bytes: int = MIB
    max_task_attempts: int = 25

    @classmethod
    def from_settings(cls, config: Any) -> EngineLimits:
        """The limits of an ``EngineSettings`` (any object with these attributes)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


class InputsTooLarge(PayloadTooLarge):
    """An execution's inputs are larger than ``max_input_bytes``."""

    title = "Inputs too large"


class TooManyActiveExecutions(TooManyRequests):
    """The tenant already has ``max_active_executions`` unfinished executions."""

    title = "Too many active executions"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class ChildLimitReached(Conflict):
    """A child execution would pass ``max_child_executions`` or ``max_child_depth``."""


class UnstorableValue(ValueError):
    """A value that cannot be stored as JSON (not serialisable, NaN, a NUL character)."""


def json_size(value: Any) -> int:
    """Bytes of ``value`` as stored JSON; raises :class:`UnstorableValue` if it cannot be."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise UnstorableValue(f"not storable as JSON: {exc}") from None
    if "\\u0000" in text and _NUL.search(text):
        raise UnstorableValue("not storable as JSON: a string holds a NUL character (\\u0000)")
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        raise UnstorableValue("not storable as JSON: a string is not valid Unicode") from None


def output_refusal(
    limits: EngineLimits, value: Any, *, what: str = "the step's output"
) -> str | None:
    """Why ``value`` cannot be stored as a step's output, or None when it can."""
    try:
        size = json_size(value)
    except UnstorableValue as exc:
        return f"{what} is {exc}"
    if size > limits.max_output_bytes:
        return (
            f"{what} is {size} bytes, over the limit of {limits.max_output_bytes} bytes "
            f"(max_output_bytes, {setting('max_output_bytes')})"
        )
    return None


def items_refusal(limits: EngineLimits, count: int) -> str | None:
    """Why a ``for_each`` over ``count`` items cannot run, or None when it can."""
    if count <= limits.max_items:
        return None
    return (
        f"'for_each' gave {count} items, over the limit of {limits.max_items} "
        f"(max_items, {setting('max_items')})"
    )


def check_inputs(
    limits: EngineLimits, inputs: Any, *, what: str = "the inputs", loc: str = "inputs"
) -> None:
    """Refuse inputs (or data sent to an execution: a signal's, an approval's) over
    ``max_input_bytes`` (413) or that cannot be stored (422)."""
    try:
        size = json_size(inputs)
    except UnstorableValue as exc:
        errors = [{"loc": [loc], "msg": str(exc)}]
        raise ValidationFailed(f"{what} are {exc}", errors=errors) from None
    if size > limits.max_input_bytes:
        raise InputsTooLarge(
            f"{what} are {size} bytes, over the limit of {limits.max_input_bytes} bytes "
            f"(max_input_bytes, {setting('max_input_bytes')})",
            errors=[{"loc": [loc], "msg": f"larger than {limits.max_input_bytes} bytes"}],
        )


async def check_active(session: AsyncSession, limits: EngineLimits, *, tenant_id: str) -> None:
    """Refuse a new root execution when the tenant has ``max_active_executions`` (429).

    Unlocked: starts racing each other may pass the limit by as many as run at once.
    """
    busy = await session.execute(
        select(func.count())
        .select_from(Execution)
        .where(
            Execution.tenant_id == tenant_id,
            Execution.status.in_(ACTIVE),  # by index (tenant_id, status)
            Execution.parent_execution_id.is_(None),
        )
    )
    if int(busy.scalar_one()) >= limits.max_active_executions:
        raise TooManyActiveExecutions(
            f"the tenant already has {limits.max_active_executions} unfinished executions, "
            f"the limit (max_active_executions, {setting('max_active_executions')}); "
            f"retry after {RETRY_AFTER_SECONDS} seconds or once some have ended"
        )


async def check_child(session: AsyncSession, limits: EngineLimits, *, parent_id: str) -> None:
    """Refuse a child of ``parent_id`` nested too deep or past the root's child budget."""
    depth, root = 1, await session.get(Execution, parent_id)
    while root is not None and root.parent_execution_id is not None:
        depth += 1
        if depth > limits.max_child_depth:
            break
        root = await session.get(Execution, root.parent_execution_id)
    if depth > limits.max_child_depth:
        raise ChildLimitReached(
            f"child executions may nest {limits.max_child_depth} deep "
            f"(max_child_depth, {setting('max_child_depth')})"
        )
    if root is None:
        return
    started = await _descendants(session, root.id, limits.max_child_depth)
    if started >= limits.max_child_executions:
        raise ChildLimitReached(
            f"execution {root.id} already started {started} child executions, the limit "
            f"(max_child_executions, {setting('max_child_executions')})"
        )


async def _descendants(session: AsyncSession, root_id: str, depth: int) -> int:
    """How many executions descend from ``root_id`` (at most ``depth`` levels down)."""
    await session.flush()  # children started earlier in this transaction count too
    tree = (
        select(Execution.id, literal(1, Integer).label("level"))
        .where(Execution.parent_execution_id == root_id)
        .cte("tree", recursive=True)
    )
    tree = tree.union_all(
        select(Execution.id, (tree.c.level + 1).label("level"))
        .join(tree, Execution.parent_execution_id == tree.c.id)
        .where(tree.c.level < depth)
    )
    count = await session.execute(select(func.count()).select_from(tree))
    return int(count.scalar_one())
