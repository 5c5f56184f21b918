"""The hashing and the evaluation order, on synthetic principals (no I/O)."""

from __future__ import annotations

from collections import Counter

from orchestrion.services.flags.evaluation import (
    BUCKETS,
    Subject,
    bucket,
    evaluate,
    in_rollout,
    pick_variant,
)

IDS = [f"principal-{n}" for n in range(10_000)]


def subject(id_: str = "p", *, tenant: str = "t1", roles: tuple[str, ...] = ("viewer",)) -> Subject:
    return Subject(id=id_, tenant_id=tenant, roles=roles, attributes={"email_domain": "a.example"})


def test_buckets_are_stable_and_spread() -> None:
    assert [bucket("f", i) for i in IDS[:50]] == [bucket("f", i) for i in IDS[:50]]
    buckets = [bucket("f", i) for i in IDS]
    assert min(buckets) >= 0
    assert max(buckets) < BUCKETS
    # Another flag's buckets are not the same: rollouts of two flags are independent.
    assert buckets != [bucket("g", i) for i in IDS]


def test_a_25_percent_rollout_takes_a_quarter_of_principals() -> None:
    on = sum(in_rollout("new-editor", i, 25) for i in IDS)
    assert abs(on / len(IDS) - 0.25) <= 0.02, on


def test_raising_the_rollout_only_adds_principals() -> None:
    previous: set[str] = set()
    for rollout in (0, 0.5, 5, 10, 25, 25.01, 50, 75, 99.99, 100):
        current = {i for i in IDS if in_rollout("checkout", i, rollout)}
        assert previous <= current, rollout
        previous = current
    assert previous == set(IDS)
    assert not any(in_rollout("checkout", i, 0) for i in IDS)


def test_variants_follow_their_weights_whatever_the_rollout() -> None:
    variants = [{"name": "blue", "weight": 70}, {"name": "green", "weight": 30}]
    counts = Counter(pick_variant("colour", i, variants) for i in IDS)
    assert abs(counts["blue"] / len(IDS) - 0.70) <= 0.02, counts
    assert set(counts) == {"blue", "green"}
    assert pick_variant("colour", "p", []) is None
    # A weight of 0 is never picked.
    assert {pick_variant("c", i, [*variants, {"name": "off", "weight": 0}]) for i in IDS[:500]} <= {
        "blue",
        "green",
    }
    at_10 = {
        i: evaluate(
            key="colour", enabled=True, rollout=10, variants=variants, rules=[], subject=subject(i)
        )
        for i in IDS[:2000]
    }
    at_90 = {
        i: evaluate(
            key="colour", enabled=True, rollout=90, variants=variants, rules=[], subject=subject(i)
        )
        for i in IDS[:2000]
    }
    for i, outcome in at_10.items():
        if outcome.enabled:
            assert at_90[i].enabled
            assert at_90[i].variant == outcome.variant


def test_the_first_matching_rule_wins_and_the_kill_switch_beats_all() -> None:
    variants = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]
    rules = [
        {"tenants": ["t2"], "enabled": False},
        {"roles": ["admin"], "variant": "b"},
        {"attributes": {"email_domain": "a.example"}, "roles": ["viewer"], "enabled": True},
        {"variant": "a"},
    ]

    def run(s: Subject, *, enabled: bool = True) -> tuple[bool, str | None, int | None]:
        o = evaluate(key="k", enabled=enabled, rollout=0, variants=variants, rules=rules, subject=s)
        return o.enabled, o.variant, o.rule

    assert run(subject(tenant="t2", roles=("admin",))) == (False, None, 0)
    assert run(subject(roles=("admin",))) == (True, "b", 1)
    enabled, variant, rule = run(subject(roles=("viewer",)))
    assert (enabled, rule) == (True, 2)
    assert variant in {"a", "b"}
    assert run(subject(roles=("editor",))) == (True, "a", 3)
    killed = evaluate(
        key="k", enabled=False, rollout=100, variants=variants, rules=rules, subject=subject()
    )
    assert (killed.enabled, killed.variant, killed.reason) == (False, None, "DISABLED")
    # Without rules, rollout 0 is off for everyone.
    off = evaluate(key="k", enabled=True, rollout=0, variants=[], rules=[], subject=subject())
    assert (off.enabled, off.reason) == (False, "SPLIT")
