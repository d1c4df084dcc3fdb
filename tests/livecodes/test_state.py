"""The WeCom `state`: at most 30 characters, and it decodes back to what was encoded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.livecodes.state import MAX_STATE_LENGTH, decode_state, encode_state

IDS = st.integers(min_value=1, max_value=36**8 - 1)
VARIANTS = st.one_of(
    st.none(), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
)


def test_known_value() -> None:
    assert encode_state(56, 3, "B") == "s1k-3-B"
    assert encode_state(56) == "s1k--"
    assert len(encode_state(36**8 - 1, 36**8 - 1, "ABCDEFGH")) == 27


@given(code=IDS, channel=st.one_of(st.none(), IDS), variant=VARIANTS)
def test_round_trip_within_wecom_limit(code: int, channel: int | None, variant: str | None) -> None:
    state = encode_state(code, channel, variant)
    assert len(state) <= MAX_STATE_LENGTH
    decoded = decode_state(state)
    assert decoded is not None
    assert (decoded.live_code_id, decoded.channel_id, decoded.variant) == (code, channel, variant)


@pytest.mark.parametrize("state", [None, "", "s", "s-1-", "S1-2-A", "s1-2-AB_C", "x" * 31, "s1k-3-B-extra", "s１-2-"])
def test_foreign_states_decode_to_nothing(state: str | None) -> None:
    assert decode_state(state) is None


def test_bad_variant_keys_and_oversize_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_state(1, 1, "too-long-key")
    with pytest.raises(ValueError):
        encode_state(36**8, 1)
