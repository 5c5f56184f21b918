"""Backend options carried in a bus URL's query: ``kafka://host:9092?idempotent=false``.

Processes get their bus as one setting (``ORCHESTRION_BUS__URL``), so an option a
deployment must set (a broker that lacks a feature, a partition count) travels in the
URL. Each backend declares the options it reads and their types; anything else in the
query is refused, so a misspelt option fails at start rather than being ignored.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def url_options(query: str, spec: dict[str, type], *, backend: str) -> dict[str, Any]:
    """The options in ``query``, each converted to its type in ``spec``.

    ``bool`` options take ``true``/``false`` (also ``1``/``0``, ``yes``/``no``,
    ``on``/``off``); ``int`` and ``float`` options take numbers. Raises ``ValueError``
    naming the option for anything unknown, repeated or malformed.
    """
    options: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        kind = spec.get(name)
        if kind is None:
            known = ", ".join(sorted(spec)) or "none"
            raise ValueError(f"unknown {backend} URL option {name!r}; known: {known}")
        if name in options:
            raise ValueError(f"{backend} URL option {name!r} is given twice")
        options[name] = _convert(name, raw, kind, backend)
    return options


def _convert(name: str, raw: str, kind: type, backend: str) -> Any:
    value = raw.strip().lower()
    if kind is bool:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    else:
        try:
            number = kind(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    expected = "true or false" if kind is bool else f"a number ({kind.__name__})"
    raise ValueError(f"{backend} URL option {name}={raw!r}: expected {expected}")
