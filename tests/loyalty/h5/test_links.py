"""Signed member links and sessions: round trip, expiry by the injected clock, forgery."""

from __future__ import annotations

from datetime import timedelta

import pytest

from siyu.config import Settings
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.loyalty.h5.links import (
    MemberIdentity,
    MemberLinkExpired,
    MemberLinkInvalid,
    member_link_token,
    member_link_url,
    read_link_token,
    read_session_cookie,
    session_cookie_value,
)

SECRET = "test-secret"
THIRTY_DAYS = timedelta(days=30)


def test_a_link_names_its_member_and_purpose(clock: FrozenClock) -> None:
    # given a link to customer 42's check-in page in workspace 7
    token = member_link_token(workspace_id=7, customer_id=42, secret=SECRET, clock=clock, purpose="check_in")
    # when it is read back within its lifetime
    identity = read_link_token(token, secret=SECRET, clock=clock, max_age=THIRTY_DAYS)
    # then it names them exactly
    assert identity == MemberIdentity(workspace_id=7, customer_id=42, purpose="check_in")


def test_a_link_expires_after_its_lifetime_by_the_clock(clock: FrozenClock) -> None:
    # given a link signed now
    token = member_link_token(workspace_id=7, customer_id=42, secret=SECRET, clock=clock)
    # when exactly 30 days pass it still works, one second later it has expired
    clock.advance(THIRTY_DAYS)
    assert read_link_token(token, secret=SECRET, clock=clock, max_age=THIRTY_DAYS).customer_id == 42
    clock.advance(timedelta(seconds=1))
    with pytest.raises(MemberLinkExpired) as expired:
        read_link_token(token, secret=SECRET, clock=clock, max_age=THIRTY_DAYS)
    # then the error is a 410 (gone), not a 5xx
    assert expired.value.status_code == 410


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # damaged signature
        lambda t: "x" + t,  # damaged payload
        lambda t: "",
        lambda t: "not-a-token",
    ],
)
def test_a_forged_or_damaged_link_is_refused(clock: FrozenClock, mangle: object) -> None:
    token = member_link_token(workspace_id=7, customer_id=42, secret=SECRET, clock=clock)
    assert callable(mangle)
    with pytest.raises(MemberLinkInvalid):
        read_link_token(mangle(token), secret=SECRET, clock=clock, max_age=THIRTY_DAYS)


def test_a_link_signed_with_another_secret_or_a_session_cookie_is_not_a_link(clock: FrozenClock) -> None:
    # a link from another installation
    foreign = member_link_token(workspace_id=7, customer_id=42, secret="other-secret", clock=clock)
    with pytest.raises(MemberLinkInvalid):
        read_link_token(foreign, secret=SECRET, clock=clock, max_age=THIRTY_DAYS)
    # a session cookie's value pasted as a link (other salt), and a link pasted as a cookie
    cookie, _csrf = session_cookie_value(workspace_id=7, customer_id=42, secret=SECRET, clock=clock)
    with pytest.raises(MemberLinkInvalid):
        read_link_token(cookie, secret=SECRET, clock=clock, max_age=THIRTY_DAYS)
    link = member_link_token(workspace_id=7, customer_id=42, secret=SECRET, clock=clock)
    with pytest.raises(MemberLinkInvalid):
        read_session_cookie(link, secret=SECRET, clock=clock, max_age=THIRTY_DAYS)


def test_a_session_cookie_carries_the_member_and_a_csrf_token(clock: FrozenClock) -> None:
    cookie, csrf = session_cookie_value(workspace_id=7, customer_id=42, secret=SECRET, clock=clock)
    session = read_session_cookie(cookie, secret=SECRET, clock=clock, max_age=THIRTY_DAYS)
    assert (session.workspace_id, session.customer_id, session.csrf) == (7, 42, csrf)
    assert len(csrf) >= 20
    clock.advance(THIRTY_DAYS + timedelta(seconds=1))
    with pytest.raises(MemberLinkExpired):
        read_session_cookie(cookie, secret=SECRET, clock=clock, max_age=THIRTY_DAYS)


def test_an_unknown_purpose_is_refused_naming_the_field(clock: FrozenClock) -> None:
    with pytest.raises(InvalidInput) as refused:
        member_link_token(workspace_id=7, customer_id=42, secret=SECRET, clock=clock, purpose="admin")
    assert refused.value.details == {"field": "purpose"}


def test_the_url_starts_with_the_public_address(clock: FrozenClock, settings: Settings) -> None:
    url = member_link_url(workspace_id=7, customer_id=42, settings=settings, clock=clock)
    assert url.startswith("http://127.0.0.1:8000/m/enter?t=")
    token = url.split("?t=", 1)[1]
    assert read_link_token(token, secret="test-secret", clock=clock, max_age=THIRTY_DAYS).customer_id == 42
