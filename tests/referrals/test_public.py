"""`/r/{code}`: a scan visit is recorded under the visitor's cookie and the visitor is sent on to
the program's live code, whose add is then attributed to the referrer; unknown codes, programs not
running and erased referrers get a friendly 404/410 page, with nothing written."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, LiveCodeScan
from siyu.models.referral import Referral, ReferralCode, ReferralProgram, ReferralStatus, ReferralVisit, VisitKind
from siyu.referrals import programs
from siyu.web.visitor import VISITOR_COOKIE, visitor_id
from tests.referrals.pages_support import World, make_world
from tests.web.conftest import app, client

__all__ = ["app", "client"]  # the console app over the test's transaction, and its client


def _visits(db: Session) -> list[ReferralVisit]:
    return list(db.scalars(select(ReferralVisit).order_by(ReferralVisit.id)))


def test_link_records_a_scan_and_sends_the_visitor_to_the_live_code(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given 王芳's code in a running program behind a live code
    world = make_world(db, clock=clock)
    # when a visitor without a cookie opens her link (typed in lower case)
    response = client.get(f"/r/{world.code.code.lower()}")
    # then they are sent to the live code with a fresh visitor cookie
    assert response.status_code == 303
    assert response.headers["location"] == f"/q/{world.live_code.slug}"
    assert response.headers["cache-control"] == "no-store"
    raw = client.cookies[VISITOR_COOKIE]
    # and one scan visit is recorded under that visitor, with a device hash, counted on the code
    db.expire_all()
    [visit] = _visits(db)
    assert (visit.kind, visit.code_id, visit.program_id, visit.visitor_id) == (
        VisitKind.SCAN,
        world.code.id,
        world.program.id,
        visitor_id(raw),
    )
    assert visit.device_id is not None and re.fullmatch(r"[0-9a-f]{64}", visit.device_id)
    counted = db.get(ReferralCode, world.code.id)
    assert counted is not None and (counted.visits_count, counted.shares_count) == (1, 0)


def test_visitor_keeps_one_cookie_through_the_live_code_and_the_add_is_attributed(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given 王芳's link
    world = make_world(db, clock=clock)
    # when a visitor opens it, lands on the live code and adds the staff member
    first = client.get(f"/r/{world.code.code}")
    landing = client.get(first.headers["location"])
    assert landing.status_code == 200, landing.text
    scan_id = re.search(r'name="scan_id" value="(\d+)"', landing.text)
    assert scan_id, landing.text
    added = client.post(f"/q/{world.live_code.slug}/add", data={"scan_id": scan_id.group(1), "name": "李雷"})
    assert added.status_code == 200, added.text
    # then the live code's scan carries the same visitor as the referral visit
    db.expire_all()
    [visit] = _visits(db)
    scan = db.scalars(select(LiveCodeScan)).one()
    assert scan.visitor_id == visit.visitor_id
    # and the new customer is attributed to 王芳, pending their first order
    referral = db.scalars(select(Referral)).one()
    assert (referral.referrer_customer_id, referral.program_id, referral.visit_id, referral.status) == (
        world.referrer.id,
        world.program.id,
        visit.id,
        ReferralStatus.PENDING,
    )
    referee = db.get(Customer, referral.referee_customer_id)
    assert referee is not None and referee.name == "李雷"


def test_a_returning_visitor_keeps_their_cookie(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a visitor who already has a visitor cookie
    world = make_world(db, clock=clock)
    client.cookies.set(VISITOR_COOKIE, "returning-visitor-0001")
    # when they open the link twice
    for _ in range(2):
        response = client.get(f"/r/{world.code.code}")
        assert response.status_code == 303
        assert "set-cookie" not in response.headers
    # then both visits are theirs (the add needs the latest) but the reload the same day counts once
    db.expire_all()
    assert [v.visitor_id for v in _visits(db)] == [visitor_id("returning-visitor-0001")] * 2
    counted = db.get(ReferralCode, world.code.id)
    assert counted is not None and counted.visits_count == 1
    # and when they open it again the next brand-local day, it counts again
    clock.advance(timedelta(days=1))
    assert client.get(f"/r/{world.code.code}").status_code == 303
    db.expire_all()
    counted = db.get(ReferralCode, world.code.id)
    assert counted is not None and counted.visits_count == 2


@pytest.mark.parametrize("code", ["ZZZZ9999", "abc", "<script>", "A" * 17, "中文中文"])
def test_unknown_or_malformed_codes_get_a_friendly_404(
    db: Session, clock: FrozenClock, client: TestClient, code: str
) -> None:
    make_world(db, clock=clock)
    # when a link with an unknown or malformed code is opened
    response = client.get(f"/r/{code}", headers={"accept-language": "zh-CN"})
    # then a friendly page says so, and nothing is recorded
    assert response.status_code == 404
    assert "邀请链接无效" in response.text
    assert "<script>" not in response.text
    assert db.scalar(select(func.count()).select_from(ReferralVisit)) == 0


def _pause(db: Session, program: ReferralProgram, clock: FrozenClock, status: str) -> None:
    programs.set_status(db, actor=Actor.system(program.workspace_id), program_id=program.id, status=status, clock=clock)
    db.commit()


@pytest.mark.parametrize("status", ["paused", "ended"])
def test_programs_not_running_get_a_friendly_410(
    db: Session, clock: FrozenClock, client: TestClient, status: str
) -> None:
    # given a program that was paused or ended after 王芳 got her code
    world = make_world(db, clock=clock)
    _pause(db, world.program, clock, status)
    # when her link is opened
    response = client.get(f"/r/{world.code.code}", headers={"accept-language": "zh-CN"})
    # then the visitor reads that it ended, and no visit is recorded
    assert response.status_code == 410
    assert "邀请活动已结束" in response.text
    assert db.scalar(select(func.count()).select_from(ReferralVisit)) == 0


def test_a_program_past_its_end_date_gets_410(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a running program whose end has passed
    world = make_world(db, clock=clock)
    world.program.ends_at = clock.now()
    db.commit()
    # when the link is opened
    response = client.get(f"/r/{world.code.code}")
    # then 410, nothing recorded
    assert response.status_code == 410
    assert db.scalar(select(func.count()).select_from(ReferralVisit)) == 0


def test_an_erased_referrer_gets_410_in_english_too(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given 王芳 erased her data
    world = make_world(db, clock=clock)
    world.referrer.erased_at = clock.now()
    db.commit()
    # when an English browser opens her link
    response = client.get(f"/r/{world.code.code}", headers={"accept-language": "en-US,en;q=0.9"})
    # then a friendly page in English, nothing recorded
    assert response.status_code == 410
    assert "This referral campaign has ended" in response.text
    assert db.scalar(select(func.count()).select_from(ReferralVisit)) == 0


def test_a_program_without_a_live_code_gets_410(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a running program whose live code was removed
    world: World = make_world(db, clock=clock)
    world.program.live_code_id = None
    db.commit()
    # when the link is opened
    response = client.get(f"/r/{world.code.code}")
    # then 410, nothing recorded
    assert response.status_code == 410
    assert db.scalar(select(func.count()).select_from(ReferralVisit)) == 0
