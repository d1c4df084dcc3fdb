"""Matching customers through the steps: pure Python over per-customer sorted occurrences.

An occurrence is `(time, row id)` (UTC seconds, the id of its row); `StepSpec.source` says which
table (and event type) the row comes from, so two steps of the same kind can tell rows apart.

Ordered funnels use a feasibility sweep ("any feasible path"): the entry is feasible at step 1; an
occurrence t of step k is feasible when some feasible occurrence p of step k − 1 that is a different
row has p ≤ t ≤ p + window (or t ≤ entry + window with `window_from: "start"`). A path never uses
the same row twice. A customer reaches step k when step k has a feasible occurrence; the earliest
feasible time of each step serves the medians and the exclusions.

Any-order funnels: steps 1 … k are reached when each of them can take its own row (no row used twice)
at any time in [entry, entry + W_k], W_k being the longest an ordered path could reach.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from siyu.analytics.funnels.schemas import FunnelOrder, StepSpec

Occurrence = tuple[float, int]
"""(UTC seconds, row id), sorted by time then id per customer."""


@dataclass(frozen=True)
class Path:
    """How far a customer got: `times[k]` is the earliest feasible time of step k + 1 (UTC seconds)."""

    times: tuple[float, ...]
    level: int
    """Steps reached, counting the entry (1 … n); exclusions may cut it below len(times)."""


def windows(steps: Sequence[StepSpec]) -> list[float]:
    """For steps 2…n: the longest a step may come after the entry, in seconds (what the any-order funnel
    allows, and how far past the period each later step is fetched)."""
    out: list[float] = []
    total = 0.0
    for spec in steps[1:]:
        span = spec.window_hours * 3600.0
        total = span if spec.from_start else total + span
        out.append(total)
    return out


Row = tuple[Hashable, int]
Used = frozenset[Row]


def _ordered(entry: Occurrence, steps: Sequence[StepSpec], later: Sequence[Sequence[Occurrence] | None]) -> list[float]:
    """Earliest feasible time per step reached (the sweep described in the module docstring)."""
    # feasible states of the previous step: sorted distinct times, and per time the sets of rows a path
    # ending there used at that very instant (only those could be reused by a later step at that instant)
    times = [entry[0]]
    states: dict[float, set[Used]] = {entry[0]: {frozenset({(steps[0].source, entry[1])})}}
    reached = [entry[0]]
    for k, spec in enumerate(steps[1:]):
        occurrences = later[k]
        if not occurrences:
            break
        span = spec.window_hours * 3600.0
        new: dict[float, set[Used]] = {}
        for t, row_id in occurrences:
            if spec.from_start and t > entry[0] + span:
                break
            i = bisect_right(times, t) - 1
            if i < 0:
                continue
            row = (spec.source, row_id)
            p = times[i]
            if p < t:
                if spec.from_start or t <= p + span:
                    new.setdefault(t, set()).add(frozenset({row}))
                continue
            # p == t: an earlier feasible time leaves no row at this instant to collide with
            if i > 0 and (spec.from_start or t <= times[i - 1] + span):
                new.setdefault(t, set()).add(frozenset({row}))
                continue
            for used in states[p]:
                if row not in used:
                    new.setdefault(t, set()).add(used | {row})
        if not new:
            break
        times = sorted(new)
        states = {t: _minimal(sets) for t, sets in new.items()}
        reached.append(times[0])
    return reached


def _minimal(sets: set[Used]) -> set[Used]:
    """Drop the sets that contain another (a path that used fewer rows is never worse)."""
    if len(sets) == 1:
        return sets
    return {s for s in sets if not any(o < s for o in sets)}


def _any_order(
    entry: Occurrence, steps: Sequence[StepSpec], later: Sequence[Sequence[Occurrence] | None], spans: list[float]
) -> list[float]:
    """Earliest usable time per step reached; steps 1 … k need distinct rows (bipartite matching)."""
    start = entry[0]
    entry_row: Row = (steps[0].source, entry[1])
    candidates: list[list[tuple[float, Row]]] = [[(start, entry_row)]]
    owner: dict[Row, int] = {entry_row: 0}
    reached = [start]

    def assign(step: int, seen: set[Row]) -> bool:
        for _t, row in candidates[step]:
            if row in seen:
                continue
            seen.add(row)
            holder = owner.get(row)
            if holder is None or assign(holder, seen):
                owner[row] = step
                return True
        return False

    for k, spec in enumerate(steps[1:]):
        occurrences = later[k] or ()
        lo = bisect_left(occurrences, (start, -1))
        hi = bisect_right(occurrences, (start + spans[k], float("inf")))
        rows = [(t, (spec.source, row_id)) for t, row_id in occurrences[lo:hi]]
        candidates.append(rows)
        if not assign(k + 1, set()):
            break
        reached.append(next(t for t, row in rows if row != entry_row))
    return reached


def match(
    entries: dict[int, Occurrence],
    steps: Sequence[StepSpec],
    later: Sequence[dict[int, list[Occurrence]]],
    order: FunnelOrder,
) -> dict[int, Path]:
    """Each entered customer's path. `entries` holds the entry occurrence; `later[k]` step k + 2's occurrences."""
    spans = windows(steps)
    paths: dict[int, Path] = {}
    for customer_id, entry in entries.items():
        mine = [step.get(customer_id) for step in later]
        if order == FunnelOrder.ORDERED:
            reached = _ordered(entry, steps, mine)
        else:
            reached = _any_order(entry, steps, mine, spans)
        paths[customer_id] = Path(tuple(reached), len(reached))
    return paths


def exclude(paths: dict[int, Path], excluded: dict[int, list[Occurrence]], between: tuple[int, int]) -> None:
    """Customers who did the excluded thing strictly between their (earliest feasible) times at steps i
    and j stop at step j − 1. Ordered funnels only (the definition rejects exclusions with order "any")."""
    i, j = between
    for customer_id, occurrences in excluded.items():
        path = paths.get(customer_id)
        if path is None or path.level < j:
            continue
        start, end = path.times[i - 1], path.times[j - 1]
        k = bisect_right(occurrences, (start, float("inf")))
        if k < len(occurrences) and occurrences[k][0] < end:
            paths[customer_id] = Path(path.times, j - 1)
