"""Errors of the knowledge service.

Exception tree::

    NotFound (404)
    ├── NodeNotFound
    ├── EdgeNotFound
    └── PathNotFound
    ValidationFailed (422)
    ├── InvalidImport          an unknown key, a duplicate key
    ├── InvalidEdge            an end that is not a node of the tenant
    └── SearchUnavailable      a search mode this installation cannot serve
    Conflict (409)
    └── PrerequisiteCycle      ``requires`` edges that loop
"""

from orchestrion.kernel.errors import Conflict, NotFound, ValidationFailed


class NodeNotFound(NotFound):
    """No such node in the caller's tenant."""


class EdgeNotFound(NotFound):
    """No such edge in the caller's tenant."""


class PathNotFound(NotFound):
    """The target cannot be reached from the source."""

    title = "No path"


class InvalidImport(ValidationFailed):
    """An import names a key it does not define, or defines one twice."""


class InvalidEdge(ValidationFailed):
    """An edge's end is not a node of the caller's tenant."""


class SearchUnavailable(ValidationFailed):
    """The search mode needs something this installation does not have."""


class PrerequisiteCycle(Conflict):
    """Prerequisites loop, so no order satisfies them."""

    title = "Prerequisite cycle"
