"""What the monitoring files name: metric names in PromQL, and the names the processes export.

:func:`metric_names` is a small tokenizer, not a PromQL parser: it drops strings, label
matchers, range selectors, grouping clauses and Grafana variables, then keeps the
identifiers that are neither function calls, keywords nor parts of numbers or durations.
:func:`exported_names` imports every module of the project that defines metrics and
lists the series names the default registry would expose (``_total``, ``_bucket``...).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

import orchestrion

#: Series Prometheus makes itself (scrape health, alert state): never exported by a process.
BUILTIN = frozenset(
    {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
)
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
        "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
    }
)  # fmt: skip
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
}


def metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names a PromQL expression reads."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # the exponent of 1e6, the unit of a duration such as 5m
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def exported_names() -> set[str]:
    """Every series name the project's processes can expose on ``/metrics``."""
    root = Path(orchestrion.__file__).parent
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "prometheus_client" not in source:
            continue
        module = ".".join(("orchestrion", *path.relative_to(root).with_suffix("").parts))
        importlib.import_module(module.removesuffix(".__init__"))
    names: set[str] = set()
    for family in REGISTRY.collect():
        suffixes = _SUFFIXES.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
        names |= {sample.name for sample in family.samples}
    return names


def unknown_names(expr: str, known: Iterable[str]) -> set[str]:
    """The names ``expr`` reads that are neither in ``known`` nor made by Prometheus."""
    return metric_names(expr) - set(known) - BUILTIN


def rule_expressions(rules: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(rule name, expr)`` of every rule in a rule file."""
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            yield str(rule.get("alert") or rule.get("record")), str(rule["expr"])


def recorded_names(rules: dict[str, Any]) -> set[str]:
    """The series a rule file records."""
    return {
        rule["record"]
        for group in rules.get("groups", [])
        for rule in group.get("rules", [])
        if "record" in rule
    }


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` of every query of a Grafana dashboard (rows included)."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel.get("title", "?"), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))
