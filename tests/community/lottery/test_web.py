"""The lottery over HTTP: the JSON API, the member H5 page, the console and the public verify page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.community.lottery import drawing
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.points.service import award_points
from siyu.models import LotteryDraw, LotteryEntry, PointsReason, Redemption, Role, Workspace
from tests.community.lottery.factories import make_draw
from tests.factories import actor_for, make_customer, make_staff, make_token, make_user, make_workspace
from tests.loyalty.h5.conftest import csrf_of as member_csrf
from tests.loyalty.h5.conftest import sign_in
from tests.web.conftest import PASSWORD, login

BODY: dict[str, Any] = {
    "name": "双十一抽奖",
    "method": "fixed",
    "entry_points": 50,
    "max_entries_per_member": 2,
    "prizes": [{"name": "一等奖", "stock": 1, "winners": 1, "points": 300}],
}


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False, headers={"accept-language": "zh-CN,zh;q=0.9"}) as c:
        yield c


@pytest.fixture
def workspace(db: Session, clock: FrozenClock) -> Workspace:
    ws = make_workspace(db, clock=clock)
    db.commit()
    return ws


def _member(db: Session, workspace: Workspace, clock: FrozenClock, points: int) -> int:
    customer_id = make_customer(db, actor=actor_for(workspace), clock=clock).customer.id
    if not points:
        db.commit()
        return customer_id
    award_points(
        db,
        workspace_id=workspace.id,
        customer_id=customer_id,
        points=points,
        reason=PointsReason.MANUAL,
        description="测试",
        idempotency_key=f"seed:{customer_id}",
        clock=clock,
    )
    db.commit()
    return customer_id


def _headers(db: Session, clock: FrozenClock, workspace: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=workspace, scopes=scopes)
    db.commit()
    return {"Authorization": f"Bearer {token}"}


def test_api_create_open_enter_draw(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a token and a customer
    headers = _headers(db, clock, workspace)
    customer_id = _member(db, workspace, clock, points=0)
    # when a draw is created, opened, entered by a task and drawn
    created = client.post("/api/v1/lottery/draws", json=BODY, headers=headers)
    assert created.status_code == 201, created.text
    draw_id = created.json()["id"]
    opened = client.post(f"/api/v1/lottery/draws/{draw_id}/open", headers=headers).json()
    assert opened["status"] == "open" and len(opened["commitment"]) == 64 and opened["seed"] is None
    entry = client.post(
        f"/api/v1/lottery/draws/{draw_id}/entries",
        json={"customer_id": customer_id, "source": "campaign", "idempotency_key": "camp-1"},
        headers=headers,
    )
    assert entry.status_code == 201, entry.text
    assert (entry.json()["ticket_no"], entry.json()["source"]) == (1, "campaign")
    drawn = client.post(f"/api/v1/lottery/draws/{draw_id}/draw", headers=headers).json()
    # then the seed is revealed, the only entrant won and got 300 points
    assert drawn["status"] == "drawn" and drawn["seed"] is not None
    assert drawn["prizes"][0]["awarded_count"] == 1
    wins = client.get(f"/api/v1/lottery/draws/{draw_id}/wins", headers=headers).json()
    assert [w["customer_id"] for w in wins] == [customer_id]
    member = get_member(db, workspace_id=workspace.id, customer_id=customer_id)
    assert member is not None and member.points_balance == 300
    verify = client.get(f"/lottery/{draw_id}/verify.json").json()
    assert verify["verified"] is True and verify["entries"] == [f"1:{customer_id}"]


def test_api_names_the_bad_field_and_writes_nothing(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace)
    bad = dict(BODY, prizes=[{"name": "奖", "stock": 1, "winners": 3}])
    response = client.post("/api/v1/lottery/draws", json=bad, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "prizes.0.winners"}
    assert db.scalar(select(func.count()).select_from(LotteryDraw).where(LotteryDraw.workspace_id == workspace.id)) == 0


def test_api_needs_growth_write(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    headers = _headers(db, clock, workspace, scopes=["growth:read"])
    response = client.post("/api/v1/lottery/draws", json=BODY, headers=headers)
    assert response.status_code == 403
    assert client.get("/api/v1/lottery/draws", headers=headers).json() == []


def test_h5_enter_with_points_double_submit_is_one_entry(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given an open draw costing 50 points and a member with 80 points, signed in
    draw = make_draw(
        db, actor=actor_for(workspace), clock=clock, entry_points=50, max_entries_per_member=2, name="<b>抽奖</b>"
    )
    db.commit()
    customer_id = _member(db, workspace, clock, points=80)
    sign_in(client, workspace.id, customer_id, clock)
    page = client.get("/m/lottery")
    assert page.status_code == 200
    assert "&lt;b&gt;抽奖&lt;/b&gt;" in page.text and "<b>抽奖</b>" not in page.text
    form = {"csrf_token": member_csrf(page.text), "n": "1"}
    # when the same form is posted twice
    first = client.post(f"/m/lottery/{draw.id}/enter", data=form)
    second = client.post(f"/m/lottery/{draw.id}/enter", data=form)
    # then one ticket and 50 points spent
    assert (first.status_code, second.status_code) == (303, 303)
    assert db.scalar(select(func.count()).where(LotteryEntry.draw_id == draw.id)) == 1
    after = client.get("/m/lottery?entered=1")
    assert 'data-testid="points-balance">30<' in after.text
    assert "第 1 号" in after.text
    # and a second ticket with too few points is a friendly 409 page, nothing written
    refused = client.post(f"/m/lottery/{draw.id}/enter", data={"csrf_token": form["csrf_token"], "n": "2"})
    assert refused.status_code == 409
    assert "积分不足，无法参与抽奖" in refused.text
    assert db.scalar(select(func.count()).where(LotteryEntry.draw_id == draw.id)) == 1


def test_h5_form_without_csrf_is_refused(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=10)
    db.commit()
    customer_id = _member(db, workspace, clock, points=80)
    sign_in(client, workspace.id, customer_id, clock)
    response = client.post(f"/m/lottery/{draw.id}/enter", data={"n": "1"})
    assert response.status_code == 403
    assert db.scalar(select(func.count()).where(LotteryEntry.draw_id == draw.id)) == 0


def test_verify_page_is_public_and_reveals_the_seed_only_when_drawn(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    draw = make_draw(db, actor=actor_for(workspace), clock=clock)
    db.commit()
    # when open: commitment shown, seed not
    page = client.get(f"/lottery/{draw.id}/verify")
    assert page.status_code == 200
    assert draw.commitment is not None and draw.commitment in page.text
    assert draw.seed is not None and draw.seed not in page.text
    # when drawn: seed and the check
    drawing.run_draw(db, actor=actor_for(workspace), draw_id=draw.id, clock=clock)
    db.commit()
    page = client.get(f"/lottery/{draw.id}/verify")
    assert draw.seed in page.text
    assert 'data-ok="yes"' in page.text
    # a draft or unknown draw is a 404
    draft = make_draw(db, actor=actor_for(workspace), clock=clock, is_open=False)
    db.commit()
    assert client.get(f"/lottery/{draft.id}/verify").status_code == 404
    assert client.get("/lottery/999999999/verify").status_code == 404
    assert client.get("/lottery/abc/verify").status_code == 422


def test_console_create_open_draw(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given an admin signed in to the console
    user = make_user(db, clock=clock, workspace=workspace, role=Role.ADMIN, password=PASSWORD)
    db.commit()
    token = login(client, user.email)
    assert client.get("/growth/lottery").status_code == 200
    assert client.get("/growth/lottery/new").status_code == 200
    form = {
        "csrf_token": token,
        "name": "会员日抽奖",
        "method": "fixed",
        "max_entries_per_member": "1",
        "one_win_per_customer": "on",
        "prizes": "一等奖, 1, 1, 500\n二等奖, x, 2",
    }
    # when a bad prize line is posted: 422 naming the prizes field, nothing written
    bad = client.post("/growth/lottery", data=form)
    assert bad.status_code == 422
    assert 'data-error="prizes"' in bad.text and "line 2" in bad.text
    assert db.scalar(select(func.count()).select_from(LotteryDraw).where(LotteryDraw.workspace_id == workspace.id)) == 0
    # when a good one is posted, then opened and drawn
    saved = client.post("/growth/lottery", data=dict(form, prizes="一等奖, 1, 1, 500\n二等奖, 3, 2, 0"))
    assert saved.status_code == 303
    location = saved.headers["location"]
    draw_id = int(re.sub(r"\D", "", location))
    detail = client.get(location)
    assert detail.status_code == 200 and "会员日抽奖" in detail.text
    assert client.get(f"/growth/lottery/{draw_id}/edit").status_code == 200
    assert client.post(f"/growth/lottery/{draw_id}/open", data={"csrf_token": token}).status_code == 303
    assert client.post(f"/growth/lottery/{draw_id}/draw", data={"csrf_token": token}).status_code == 303
    draw = db.get(LotteryDraw, draw_id)
    assert draw is not None
    db.refresh(draw)
    assert str(draw.status) == "drawn"
    page = client.get(f"/growth/lottery/{draw_id}")
    assert draw.seed is not None and draw.seed in page.text
    english = client.get(f"/growth/lottery/{draw_id}", headers={"accept-language": "en"})
    assert english.status_code == 200


def test_console_staff_cannot_see_lottery(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    user = make_user(db, clock=clock, workspace=workspace, role=Role.STAFF, password=PASSWORD, staff_id=staff.id)
    db.commit()
    login(client, user.email)
    assert client.get("/growth/lottery").status_code == 403


def _next_redemption_id(db: Session) -> int:
    """The id the next redemption will get (PostgreSQL: past the sequence, which rolled-back tests advanced)."""
    if db.get_bind().dialect.name == "postgresql":
        return int(db.scalar(text("SELECT nextval(pg_get_serial_sequence('redemptions', 'id'))")) or 0) + 1
    return int(db.scalar(select(func.coalesce(func.max(Redemption.id), 0))) or 0) + 1


def test_api_keys_are_namespaced_apart_from_redemption_tickets(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    from siyu.loyalty.rewards.service import redeem
    from siyu.models import RewardKind
    from tests.loyalty.rewards.factories import make_reward

    # given an open draw, a lottery-entry reward pointing at it, and a member with 500 points
    headers = _headers(db, clock, workspace)
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, max_entries_per_member=5)
    reward = make_reward(
        db, workspace=workspace, clock=clock, kind=RewardKind.LOTTERY_ENTRY, points_price=100, lottery_draw_id=draw.id
    )
    customer_id = _member(db, workspace, clock, points=500)
    db.commit()
    # when an API caller grants a ticket with the key "redemption:<the next redemption id>"
    upcoming = _next_redemption_id(db)
    granted = client.post(
        f"/api/v1/lottery/draws/{draw.id}/entries",
        json={"customer_id": customer_id, "source": "task", "idempotency_key": f"redemption:{upcoming}"},
        headers=headers,
    )
    assert granted.status_code == 201, granted.text
    # and that redemption then happens
    redemption = redeem(
        db, workspace_id=workspace.id, customer_id=customer_id, reward_id=reward.id, idempotency_key="m1",
        address=None, clock=clock,
    )  # fmt: skip
    assert redemption.id == upcoming
    # then the redemption has its own ticket; the API's is stored under api:
    keys = db.scalars(
        select(LotteryEntry.idempotency_key).where(LotteryEntry.draw_id == draw.id).order_by(LotteryEntry.ticket_no)
    ).all()
    assert keys == [f"api:redemption:{upcoming}", f"redemption:{upcoming}"]
    # and the same API key again is the same entry
    again = client.post(
        f"/api/v1/lottery/draws/{draw.id}/entries",
        json={"customer_id": customer_id, "source": "task", "idempotency_key": f"redemption:{upcoming}"},
        headers=headers,
    )
    assert again.status_code == 201 and again.json()["id"] == granted.json()["id"]


def test_h5_next_entry_number_comes_from_the_points_tickets_in_that_draw(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    from siyu.community.lottery import entries
    from siyu.models import EntrySource

    # given a draw costing 10 points allowing 300 entries; the member holds 201 points tickets there
    # (more than the 200 tickets the page lists) plus a task ticket, and a ticket in another draw
    draw = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=10, max_entries_per_member=300)
    other = make_draw(db, actor=actor_for(workspace), clock=clock, entry_points=10, name="别的")
    customer_id = _member(db, workspace, clock, points=5000)
    # (written directly: 201 ledger spends would only slow the test down)
    db.add_all(
        LotteryEntry(
            workspace_id=workspace.id,
            draw_id=draw.id,
            customer_id=customer_id,
            ticket_no=n,
            source=EntrySource.POINTS,
            source_ref=f"points:{n}",
            idempotency_key=entries.points_key(draw.id, customer_id, n),
            created_at=clock.now(),
        )
        for n in range(1, 202)
    )
    db.flush()
    entries.enter(
        db, workspace_id=workspace.id, draw_id=draw.id, customer_id=customer_id, source=EntrySource.TASK,
        source_ref=None, idempotency_key="t1", clock=clock,
    )  # fmt: skip
    entries.enter_with_points(
        db, workspace_id=workspace.id, draw_id=other.id, customer_id=customer_id, n=1, clock=clock
    )
    db.commit()
    sign_in(client, workspace.id, customer_id, clock)
    page = client.get("/m/lottery")
    # then the form for the draw carries n = 202, and the count is uncapped (202 tickets)
    section = page.text.split(f'data-draw="{draw.id}"')[1].split("</section>")[0]
    assert re.search(r'name="n" value="(\d+)"', section).group(1) == "202"  # type: ignore[union-attr]
    assert "已参与 202/300 次" in section
    # and posting it buys ticket 203 for 10 points
    response = client.post(f"/m/lottery/{draw.id}/enter", data={"csrf_token": member_csrf(page.text), "n": "202"})
    assert response.status_code == 303
    assert db.scalar(select(func.count()).where(LotteryEntry.draw_id == draw.id)) == 203
    member = get_member(db, workspace_id=workspace.id, customer_id=customer_id)
    assert member is not None and member.points_balance == 5000 - 10 * 2  # the other draw's ticket and this one
