"""The figures of a group of executions: counts and sums from the hourly buckets, and
duration percentiles, exact or sketched (:mod:`.digest`), for any grouping."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.services.analytics import repository
from orchestrion.services.analytics.digest import EXACT_MAX, percentiles
from orchestrion.services.analytics.repository import BUCKET_SUMS, Scope

#: Maps the SQL group key (the ``by`` columns' values) to the key figures are kept under.
KeyOf = Callable[[tuple[Any, ...]], Hashable]


def _same(key: tuple[Any, ...]) -> Hashable:
    return key


@dataclass
class Figures:
    """Counts, sums and durations of one group."""

    sums: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(BUCKET_SUMS, 0))
    values: list[float] = field(default_factory=list)
    bins: dict[int, int] = field(default_factory=dict)
    exact: bool = True

    def add(self, sums: Sequence[Any]) -> None:
        """Add one row of sums (in ``BUCKET_SUMS`` order)."""
        for name, value in zip(BUCKET_SUMS, sums, strict=True):
            self.sums[name] += value

    @property
    def finished(self) -> int:
        """Executions that ended (succeeded, failed or cancelled)."""
        s = self.sums
        return int(s["succeeded"] + s["failed"] + s["cancelled"])

    @property
    def success_rate(self) -> float | None:
        """Succeeded over finished, or None when none finished."""
        finished = self.finished
        return round(self.sums["succeeded"] / finished, 6) if finished else None

    def durations(self) -> dict[str, float | None]:
        """``{"p50", "p95", "p99"}`` in milliseconds."""
        if self.exact:
            return percentiles(values=self.values)
        return percentiles(bins=self.bins)

    def to_dict(self) -> dict[str, Any]:
        """The API's figures object."""
        s = self.sums
        return {
            "executions": {
                "total": int(s["executions"]),
                "succeeded": int(s["succeeded"]),
                "failed": int(s["failed"]),
                "cancelled": int(s["cancelled"]),
                "success_rate": self.success_rate,
            },
            "duration_ms": {
                **self.durations(),
                "mean": round(s["duration_sum_ms"] / s["durations"], 3) if s["durations"] else None,
                "exact": self.exact,
            },
            "steps": {"total": int(s["steps_total"]), "failed": int(s["steps_failed"])},
            "tokens": {"input": int(s["input_tokens"]), "output": int(s["output_tokens"])},
            "cost_usd": round(float(s["cost_usd"]), 9),
        }


async def collect(
    session: AsyncSession,
    scope: Scope,
    *,
    by: Sequence[str] = (),
    key_of: KeyOf = _same,
    exact_max: int = EXACT_MAX,
) -> dict[Hashable, Figures]:
    """Figures of every group of ``scope`` (grouped by the ``by`` columns, then
    ``key_of``). Percentiles are exact when the whole read rests on at most
    ``exact_max`` durations, else every group's come from the sketch."""
    found: dict[Hashable, Figures] = {}
    for key, sums in await repository.bucket_sums(session, scope, by):
        found.setdefault(key_of(key), Figures()).add(sums)
    timed = sum(int(f.sums["durations"]) for f in found.values())
    if timed == 0:
        return found
    if timed <= exact_max:
        for key, value in await repository.raw_durations(session, scope, by):
            found.setdefault(key_of(key), Figures()).values.append(value)
        return found
    for figures in found.values():
        figures.exact = False
    for key, bin_, count in await repository.duration_bins(session, scope, by):
        group = found.setdefault(key_of(key), Figures(exact=False))
        group.bins[bin_] = group.bins.get(bin_, 0) + count
    return found
