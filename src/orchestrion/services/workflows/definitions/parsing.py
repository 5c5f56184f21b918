"""Reading a definition body (JSON or YAML) within bounds, before anything is built from it.

YAML aliases let a few hundred bytes stand for millions of nodes ("billion laughs"): PyYAML
shares the aliased objects, but everything that walks the result afterwards (validation,
JSON encoding, storage) pays for the expanded size. :func:`load_yaml` walks the parser's
event stream first, iteratively, and refuses a document that uses more than
``yaml_max_aliases`` aliases, expands to more than ``yaml_max_nodes`` nodes or nests deeper
than ``body_max_depth``, so construction only ever sees a bounded document. JSON bodies get
the same depth check (:func:`load_json`) whatever their Content-Type said.

Exception tree::

    ValidationFailed (422)
    └── DocumentTooLarge
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from orchestrion.kernel.errors import ValidationFailed
from orchestrion.kernel.http.bodylimits import DEFAULT_MAX_DEPTH, nesting_exceeds

try:  # the C parser when PyYAML was built with libyaml; same events either way
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class DocumentTooLarge(ValidationFailed):
    """A body past a parsing limit; ``detail`` names the limit and its setting."""


@dataclass(frozen=True)
class ParseLimits:
    """The bounds a definition body is read within (from the settings' ``limits``)."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_aliases: int = 100
    max_nodes: int = 100_000

    @classmethod
    def from_settings(cls, limits: Any) -> ParseLimits:
        """From a ``LimitsSettings`` (or anything with its fields); defaults when None."""
        if limits is None:
            return cls()
        return cls(
            max_depth=limits.body_max_depth,
            max_aliases=limits.yaml_max_aliases,
            max_nodes=limits.yaml_max_nodes,
        )


def _too_large(what: str, limit: int, unit: str, setting: str) -> DocumentTooLarge:
    env = "ORCHESTRION_LIMITS__" + setting.upper()
    return DocumentTooLarge(f"the YAML document {what} {limit:,} {unit} (limits.{setting}, {env})")


def check_yaml(text: str | bytes, limits: ParseLimits) -> None:
    """Refuse a YAML document past the limits, from its events (nothing is constructed).

    Raises DocumentTooLarge, or yaml.YAMLError when the text is not YAML.
    """
    sizes: dict[str, int] = {}  # anchor -> expanded node count
    open_nodes: list[list[Any]] = []  # [anchor, expanded count so far]
    aliases = total = 0

    def add(new: int, expanded: int) -> None:
        # new: nodes not counted yet; expanded: what the enclosing node grows by
        nonlocal total
        total += new
        if total > limits.max_nodes:
            raise _too_large("expands to more than", limits.max_nodes, "nodes", "yaml_max_nodes")
        if open_nodes:
            open_nodes[-1][1] += expanded

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise _too_large(
                    "uses more than", limits.max_aliases, "aliases", "yaml_max_aliases"
                )
            if event.anchor not in sizes:  # an alias of an enclosing node: infinite
                raise DocumentTooLarge(f"the YAML alias *{event.anchor} refers to itself")
            add(sizes[event.anchor], sizes[event.anchor])
        elif isinstance(event, yaml.ScalarEvent):
            add(1, 1)
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) > limits.max_depth:
                raise _too_large("nests deeper than", limits.max_depth, "levels", "body_max_depth")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = count
            add(1, count)  # its children were counted as they came


def load_yaml(text: str | bytes, limits: ParseLimits) -> Any:
    """The YAML document as data, once :func:`check_yaml` has accepted it."""
    check_yaml(text, limits)
    return yaml.load(text, Loader=_Loader)


def load_json(raw: str | bytes, limits: ParseLimits) -> Any:
    """The JSON document as data; DocumentTooLarge when nested deeper than the limit."""
    if nesting_exceeds(raw.encode() if isinstance(raw, str) else raw, limits.max_depth):
        raise DocumentTooLarge(
            f"the JSON body is nested deeper than {limits.max_depth} levels "
            "(limits.body_max_depth, ORCHESTRION_LIMITS__BODY_MAX_DEPTH)"
        )
    return json.loads(raw)
