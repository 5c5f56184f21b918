"""Prometheus metrics of LLM budgets, set where a model call reserves against them.

Labelled by budget id: budgets are a few per tenant, made by administrators. An
execution budget's ratio is that of the execution checked last.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

BUDGET_USED = Gauge(
    "orchestrion_llm_budget_used_ratio",
    "Share of a budget's `limit_usd` spent or reserved when a model call last checked it "
    "(1: the limit), by budget id and scope (tenant, workflow, execution).",
    ["budget", "scope"],
)
BUDGET_EXCEEDED = Counter(
    "orchestrion_llm_budget_exceeded_total",
    "Model calls refused because they would pass a budget, by scope.",
    ["scope"],
)
