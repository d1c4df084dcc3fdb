"""Yuan typed by people ↔ integer fen."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.channels.money import format_yuan, parse_percent, parse_yuan
from siyu.kit.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1234.5", 123_450),
        ("1,234.50", 123_450),
        ("¥ 0.01", 1),
        ("0", 0),
        ("20", 2_000),
        ("1.500", 150),
        ("1e2", 10_000),
    ],
)
def test_parse_yuan_is_exact(text: str, fen: int) -> None:
    assert parse_yuan(text, field="amount") == fen


@pytest.mark.parametrize("text", ["1.005", "-1", "abc", "", "NaN", "Infinity", "1e30", "0.001"])
def test_parse_yuan_refuses_what_is_not_whole_fen(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_yuan(text, field="amount")
    assert caught.value.details == {"field": "amount"}


def test_format_yuan() -> None:
    assert [format_yuan(v) for v in (123_450, 5, 0, -100_000_001, None)] == [
        "¥1,234.50",
        "¥0.05",
        "¥0.00",
        "-¥1,000,000.01",
        "",
    ]


def test_percent_to_basis_points() -> None:
    assert parse_percent("15.5", field="cps") == 1_550
    with pytest.raises(InvalidInput):
        parse_percent("15.555", field="cps")


@given(st.integers(min_value=0, max_value=10**15))
def test_format_then_parse_round_trips(fen: int) -> None:
    assert parse_yuan(format_yuan(fen), field="amount") == fen
