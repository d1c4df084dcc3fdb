"""Phone normalisation and masking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.kit.phone import InvalidPhone, display_phone, mask_phone, normalize_phone

PREFIXES = ["130", "131", "135", "136", "138", "139", "150", "151", "177", "186", "187", "199"]


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


@given(
    prefix=st.sampled_from(PREFIXES),
    rest=st.integers(0, 99_999_999),
    style=st.sampled_from(["plain", "plus", "86", "00", "dashed", "spaced", "fullwidth"]),
)
def test_every_common_spelling_of_a_mainland_mobile_gives_one_e164(prefix: str, rest: int, style: str) -> None:
    national = f"{prefix}{rest:08d}"
    spelled = {
        "plain": national,
        "plus": f"+86{national}",
        "86": f"86{national}",
        "00": f"0086{national}",
        "dashed": f"+86 {national[:3]}-{national[3:7]}-{national[7:]}",
        "spaced": f" {national[:3]} {national[3:7]} {national[7:]} ",
        "fullwidth": _full_width(national),
    }[style]
    assert normalize_phone(spelled) == f"+86{national}"


@pytest.mark.parametrize("bad", ["", "12345", "1380013800", "138001380001", "abc", "+1 555", "23800138000"])
def test_invalid_numbers_raise(bad: str) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(bad)


def test_foreign_numbers_keep_their_country() -> None:
    assert normalize_phone("+852 6123 4567") == "+85261234567"
    assert normalize_phone("+1 650-253-0000") == "+16502530000"


def test_masking_and_display() -> None:
    assert mask_phone("+8613800138000") == "138****8000"
    assert mask_phone("+85261234567") == "+85****4567"
    assert mask_phone(None) is None
    assert display_phone("+8613800138000") == "13800138000"
