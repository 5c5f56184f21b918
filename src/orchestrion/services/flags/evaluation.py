"""How a flag answers for one principal: pure functions, no I/O.

Order: the kill switch (``enabled: false`` is off for everyone), then the rules (the
first that matches decides), then the percentage rollout. A principal's bucket is
``sha256("<flag key>:<principal id>")`` reduced to 0..9999; the flag is on when the
bucket is below ``rollout * 100``, so raising the rollout only adds principals. The
variant comes from a second, independent bucket laid over the variants' weights, so
changing the rollout never moves a principal to another variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BUCKETS = 10_000


def bucket(key: str, principal_id: str, *, salt: str = "") -> int:
    """The principal's stable bucket (0..9999) for flag ``key``."""
    digest = hashlib.sha256(f"{key}:{salt}{principal_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(key: str, principal_id: str, rollout: float) -> bool:
    """Whether the principal is inside a ``rollout`` percent (0-100) of flag ``key``."""
    return bucket(key, principal_id) < round(rollout * 100)


def pick_variant(key: str, principal_id: str, variants: Sequence[Mapping[str, Any]]) -> str | None:
    """The principal's variant by weight, or None for a boolean flag."""
    total = sum(int(v["weight"]) for v in variants)
    if not variants or total <= 0:
        return None
    point = bucket(key, principal_id, salt="variant:") * total // BUCKETS
    for variant in variants:
        point -= int(variant["weight"])
        if point < 0:
            return str(variant["name"])
    return str(variants[-1]["name"])  # pragma: no cover - the weights sum to total


@dataclass(frozen=True)
class Subject:
    """What rules can match on: the principal's identity, never what a caller claims."""

    id: str
    tenant_id: str
    roles: tuple[str, ...]
    attributes: Mapping[str, str]


@dataclass(frozen=True)
class Outcome:
    """A flag's answer for one principal, and why (an OpenFeature reason)."""

    enabled: bool
    variant: str | None
    reason: str
    rule: int | None = None


def _matches(rule: Mapping[str, Any], subject: Subject) -> bool:
    tenants = rule.get("tenants")
    if tenants and subject.tenant_id not in tenants:
        return False
    roles = rule.get("roles")
    if roles and not set(roles) & set(subject.roles):
        return False
    attributes: Mapping[str, Any] = rule.get("attributes") or {}
    return all(subject.attributes.get(name) == value for name, value in attributes.items())


def evaluate(
    *,
    key: str,
    enabled: bool,
    rollout: float,
    variants: Sequence[Mapping[str, Any]],
    rules: Sequence[Mapping[str, Any]],
    subject: Subject,
) -> Outcome:
    """The flag's answer for ``subject``."""
    if not enabled:
        return Outcome(enabled=False, variant=None, reason="DISABLED")
    for index, rule in enumerate(rules):
        if not _matches(rule, subject):
            continue
        if rule.get("enabled") is False:
            return Outcome(enabled=False, variant=None, reason="TARGETING_MATCH", rule=index)
        variant = rule.get("variant") or pick_variant(key, subject.id, variants)
        return Outcome(enabled=True, variant=variant, reason="TARGETING_MATCH", rule=index)
    if in_rollout(key, subject.id, rollout):
        return Outcome(
            enabled=True, variant=pick_variant(key, subject.id, variants), reason="SPLIT"
        )
    return Outcome(enabled=False, variant=None, reason="SPLIT")
