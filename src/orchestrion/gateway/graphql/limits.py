"""How much one operation may ask for: its cost, before anything runs.

Depth is strawberry's ``QueryDepthLimiter`` (a validation rule). Cost needs the
variables (``pagination: $page``), so it is checked when execution starts: every field
costs 1, times the items its list may hold — a connection's ``pagination.limit``
(20 unless given; its ``edges`` and ``nodes`` then count once),
``Workflow.executions(first:)`` (10), ``events(limit:)`` (100) and :data:`LIST_WEIGHT`
for other lists — and the operation may cost ``max_cost`` at most.
Introspection costs nothing (GraphiQL's own query must always pass).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

#: Items assumed in a list without a size argument (the steps of an execution...).
LIST_WEIGHT = 5
_PAGE_DEFAULT = 20


class LimitExceeded(GraphQLError):
    """An operation past one of the limits; the message and ``extensions`` name it."""

    def __init__(self, message: str, *, code: str, limit: int, value: int) -> None:
        super().__init__(message, extensions={"code": code, "limit": limit, "value": value})
        self.code = code
        self.limit = limit
        self.value = value

    def extensions(self) -> dict[str, Any]:  # type: ignore[override]
        """The error's ``extensions`` (the limit and the operation's figure)."""
        return {"code": self.code, "limit": self.limit, "value": self.value}


def _is_list(kind: Any) -> bool:
    if isinstance(kind, GraphQLNonNull):
        kind = kind.of_type
    return isinstance(kind, GraphQLList)


class _Cost:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def arguments(self, node: FieldNode) -> dict[str, Any]:
        return {
            a.name.value: value_from_ast_untyped(a.value, dict(self.variables))
            for a in node.arguments or ()
        }

    def multiplier(self, node: FieldNode, field: GraphQLField, parent: GraphQLObjectType) -> int:
        """How many items the field may return: its size argument, else a guess."""
        if parent.name.endswith("Connection"):
            return 1  # edges and nodes: the connection's own size counted them
        args = self.arguments(node)
        if "pagination" in field.args:
            pagination = args.get("pagination")
            limit = pagination.get("limit") if isinstance(pagination, dict) else None
            return limit if isinstance(limit, int) and limit > 0 else _PAGE_DEFAULT
        for name in ("first", "limit"):
            if name in field.args:
                value = args.get(name, field.args[name].default_value)
                return value if isinstance(value, int) and value > 0 else LIST_WEIGHT
        return LIST_WEIGHT if _is_list(field.type) else 1

    def selection(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        if selection_set is None or not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                name = node.name.value
                if name.startswith("__"):
                    continue
                field = parent.fields.get(name)
                if field is None:
                    continue
                child = self.selection(node.selection_set, get_named_type(field.type))
                total += self.multiplier(node, field, parent) * (1 + child)
            elif isinstance(node, InlineFragmentNode):
                kind = (
                    self.schema.get_type(node.type_condition.name.value)
                    if node.type_condition
                    else parent
                )
                total += self.selection(node.selection_set, kind or parent)
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.fragments.get(node.name.value)
                if fragment is not None:
                    kind = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selection(fragment.selection_set, kind or parent)
        return total


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The cost of ``operation`` with ``variables`` (see the module's docstring)."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    return _Cost(schema, fragments, variables).selection(operation.selection_set, root)


class CostLimiter(SchemaExtension):
    """Refuses an operation whose cost exceeds ``max_cost``, before any resolver runs."""

    def __init__(self, *, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        """Check the cost, then let execution go on."""
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            wanted = context.operation_name
            for operation in operations:
                if wanted and (operation.name is None or operation.name.value != wanted):
                    continue
                cost = operation_cost(
                    context.schema._schema, operation, fragments, context.variables or {}
                )
                if cost > self.max_cost:
                    raise LimitExceeded(
                        f"query cost {cost} exceeds the maximum cost of {self.max_cost} "
                        "(ask for fewer items or fields)",
                        code="COST_LIMIT_EXCEEDED",
                        limit=self.max_cost,
                        value=cost,
                    )
                break
        yield
