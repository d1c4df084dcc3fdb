"""Quintile scores: hand-worked cases and properties (1–5, ties equal, monotone)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from siyu.analytics.rfm.scoring import quintile_scores


def test_hand_worked_scores() -> None:
    # n = 5, ranks 1, 2, 2, 4, 5 → ceil(5·rank/5) = rank
    assert quintile_scores([10, 20, 20, 30, 40]).tolist() == [1, 2, 2, 4, 5]
    # n = 10: ceil(rank/2)
    assert quintile_scores(list(range(1, 11))).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # recency is inverse: 1 day (best) → rank 3 → 5; 5 days → 2 → ceil(10/3) = 4; 30 days → 1 → 2
    assert quintile_scores([1, 5, 30], inverse=True).tolist() == [5, 4, 2]
    assert quintile_scores([]).tolist() == []


values = st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=60)


@given(values, st.booleans())
def test_scores_are_between_one_and_five(data: list[int], inverse: bool) -> None:
    assert all(1 <= s <= 5 for s in quintile_scores(data, inverse=inverse).tolist())


@given(values, st.booleans())
def test_equal_values_get_equal_scores(data: list[int], inverse: bool) -> None:
    scores = quintile_scores(data, inverse=inverse).tolist()
    by_value: dict[int, set[int]] = {}
    for value, score in zip(data, scores, strict=True):
        by_value.setdefault(value, set()).add(score)
    assert all(len(s) == 1 for s in by_value.values())


@given(values)
def test_higher_values_never_score_lower(data: list[int]) -> None:
    scores = quintile_scores(data).tolist()
    inverse = quintile_scores(data, inverse=True).tolist()
    for i in range(len(data)):
        for j in range(len(data)):
            if data[i] > data[j]:
                assert scores[i] >= scores[j]
                assert inverse[i] <= inverse[j]
