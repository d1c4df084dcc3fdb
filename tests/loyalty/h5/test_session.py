"""The member session is re-resolved on every request: a customer merged after opening their link
acts as the survivor from the next request on, an erased one has no session any more."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Member, TaskCompletion
from tests.loyalty.h5.conftest import csrf_of, sign_in
from tests.loyalty.h5.factories import make_loyalty, make_member


def _balance(db: Session, member: Member) -> int:
    db.expire_all()
    return db.scalars(select(Member.points_balance).where(Member.id == member.id)).one()


def _check_ins(db: Session, member: Member) -> int:
    return db.scalar(select(func.count()).select_from(TaskCompletion).where(TaskCompletion.member_id == member.id)) or 0


def test_a_session_opened_before_a_merge_acts_as_the_survivor(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given 王芳 (10 points) signed in on her phone, then merged into 王芳(新) (300 points)
    setup = make_loyalty(db, clock=clock)
    merged, merged_member = make_member(db, workspace=setup.workspace, clock=clock, points=10, name="王芳")
    survivor, survivor_member = make_member(db, workspace=setup.workspace, clock=clock, points=300, name="王芳(新)")
    db.commit()
    sign_in(client, setup.workspace.id, merged.id, clock)
    token = csrf_of(client.get("/m/check-in").text)
    db.get(Customer, merged.id).merged_into_id = survivor.id  # type: ignore[union-attr]
    db.commit()
    # when she opens the center and checks in with the same cookie
    home = client.get("/m/")
    done = client.post("/m/check-in", data={"csrf_token": token})
    # then she sees the survivor's 300 points and the 5-point check-in goes to the survivor
    assert home.status_code == 200
    assert 'data-testid="points-balance">300<' in home.text
    assert done.status_code == 303 and done.headers["location"] == "/m/check-in?done=1"
    assert (_balance(db, survivor_member), _check_ins(db, survivor_member)) == (305, 1)
    # and the merged-away member row gets nothing
    assert (_balance(db, merged_member), _check_ins(db, merged_member)) == (10, 0)


def test_a_session_of_a_customer_erased_since_is_no_session(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given 李雷 (50 points) signed in, then erased
    setup = make_loyalty(db, clock=clock)
    customer, member = make_member(db, workspace=setup.workspace, clock=clock, points=50, name="李雷")
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    token = csrf_of(client.get("/m/check-in").text)
    db.get(Customer, customer.id).erased_at = clock.now()  # type: ignore[union-attr]
    db.commit()
    # when the same cookie opens a page and posts a check-in
    page = client.get("/m/points")
    posted = client.post("/m/check-in", data={"csrf_token": token})
    # then both get the friendly "use your link" page with a 401, and nothing is written
    assert page.status_code == 401
    assert "<title>请从链接进入</title>" in page.text
    assert posted.status_code == 401
    assert (_balance(db, member), _check_ins(db, member)) == (50, 0)
