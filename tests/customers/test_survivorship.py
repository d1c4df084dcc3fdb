"""Survivorship: the most recent non-empty value wins, whatever order observations arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from siyu.customers.service.profile import apply_profile
from siyu.models import Customer

BASE = datetime(2026, 1, 1, tzinfo=UTC)

observations = st.lists(
    st.tuples(st.sampled_from(["上海", "杭州", "北京", "", None]), st.integers(0, 10_000)),
    min_size=1,
    max_size=8,
    unique_by=lambda o: o[1],
)


def _fresh() -> Customer:
    return Customer(attributes={}, field_updated_at={})


@given(observations, st.randoms())
def test_order_of_arrival_does_not_matter(obs: list[tuple[str | None, int]], rnd: object) -> None:
    shuffled = list(obs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    results = []
    for sequence in (obs, shuffled):
        customer = _fresh()
        for value, minutes in sequence:
            if value:  # empty values are never applied (ingest drops them)
                apply_profile(customer, {"city": value}, BASE + timedelta(minutes=minutes), {})
        results.append(customer.city)
    present = [(minutes, value) for value, minutes in obs if value]
    expected = max(present)[1] if present else None
    assert results == [expected, expected]


@given(observations)
def test_oldest_rule_keeps_the_first_value(obs: list[tuple[str | None, int]]) -> None:
    customer = _fresh()
    for value, minutes in obs:
        if value:
            apply_profile(customer, {"first_channel": value}, BASE + timedelta(minutes=minutes), {})
    present = [(minutes, value) for value, minutes in obs if value]
    assert customer.first_channel == (min(present)[1] if present else None)
