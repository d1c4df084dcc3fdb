"""Properties of the matcher on random histories, checked against brute force over every path:
the ordered sweep reaches exactly the steps some path (distinct rows, times in their windows) reaches,
at the earliest time such a path has; any order likewise with a distinct-row assignment; counts never
grow along the steps; ordered ≤ any order; exclusions only ever cut."""

from __future__ import annotations

from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.analytics.funnels.engine import Occurrence, exclude, match, windows
from siyu.analytics.funnels.schemas import FunnelOrder, StepKind, StepSpec

SOURCES = ("a", "b")
hours = st.integers(min_value=0, max_value=12)
steps_st = st.lists(
    st.tuples(st.sampled_from(SOURCES), st.integers(min_value=1, max_value=6), st.booleans()), min_size=1, max_size=3
).map(
    lambda ws: [StepSpec(StepKind.SCAN)] + [StepSpec(StepKind.EVENT, e, window_hours=h, from_start=s) for e, h, s in ws]
)


def history(data: st.DataObject) -> list[Occurrence]:
    """Up to 4 rows with distinct ids, at few distinct hours (so ties at one instant are common)."""
    hs = data.draw(st.lists(hours, max_size=4))
    return sorted((h * 3600.0, i + 1) for i, h in enumerate(hs))


def brute_ordered(entry: Occurrence, steps: list[StepSpec], lists: list[list[Occurrence]]) -> list[float]:
    best: dict[int, float] = {0: entry[0]}

    def walk(k: int, t: float, used: frozenset[tuple[object, int]]) -> None:
        if k == len(steps):
            return
        spec = steps[k]
        span = spec.window_hours * 3600.0
        for at, rid in lists[k - 1]:
            row = (spec.source, rid)
            limit = (entry[0] if spec.from_start else t) + span
            if t <= at <= limit and row not in used:
                best[k] = min(best.get(k, at), at)
                walk(k + 1, at, used | {row})

    walk(1, entry[0], frozenset({(steps[0].source, entry[1])}))
    return [best[k] for k in range(len(best))]


def brute_any_level(entry: Occurrence, steps: list[StepSpec], lists: list[list[Occurrence]]) -> int:
    spans = windows(steps)
    level = 1
    for k in range(1, len(steps)):
        options = [
            [(s.source, rid) for at, rid in lists[j - 1] if entry[0] <= at <= entry[0] + spans[j - 1]]
            for j, s in enumerate(steps[1 : k + 1], 1)
        ]
        if not any(len(set(pick)) == len(pick) for pick in product(*options)):
            break
        level = k + 1
    return level


@settings(max_examples=300, deadline=None)
@given(steps=steps_st, data=st.data())
def test_sweep_matches_brute_force_and_orders_compare(steps: list[StepSpec], data: st.DataObject) -> None:
    customers = range(4)
    entries = {c: (data.draw(hours) * 3600.0, 0) for c in customers}
    hist = {(c, src): history(data) for c in customers for src in SOURCES}
    later = [{c: hist[c, str(spec.event_type)] for c in customers} for spec in steps[1:]]
    ordered = match(entries, steps, later, FunnelOrder.ORDERED)
    anyorder = match(entries, steps, later, FunnelOrder.ANY)
    for paths in (ordered, anyorder):
        counts = [sum(1 for p in paths.values() if p.level > k) for k in range(len(steps))]
        assert counts == sorted(counts, reverse=True)
    for c in customers:
        lists = [hist[c, str(spec.event_type)] for spec in steps[1:]]
        assert list(ordered[c].times) == brute_ordered(entries[c], steps, lists)
        assert anyorder[c].level == brute_any_level(entries[c], steps, lists)
        assert ordered[c].level <= anyorder[c].level
    # exclusions (ordered funnels only) never raise a level, and cut to j − 1 exactly when they bite
    if len(steps) >= 2:
        i = data.draw(st.integers(min_value=1, max_value=len(steps) - 1))
        j = data.draw(st.integers(min_value=i + 1, max_value=len(steps)))
        excluded = {c: history(data) for c in customers}
        cut = dict(ordered)
        exclude(cut, excluded, (i, j))
        for c in customers:
            before = ordered[c]
            hit = before.level >= j and any(before.times[i - 1] < t < before.times[j - 1] for t, _id in excluded[c])
            assert cut[c].level == (j - 1 if hit else before.level)
