"""`{{ member_url }}`: every recipient's own link, which opens their center."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.kit.clock import FrozenClock
from siyu.loyalty.h5.variables import member_urls
from tests.loyalty.h5.factories import make_loyalty, make_member


def test_each_recipient_gets_a_link_to_their_own_center(
    db: Session, clock: FrozenClock, settings: Settings, client: TestClient
) -> None:
    # given two members, one of them erased
    setup = make_loyalty(db, clock=clock)
    wang, _m1 = make_member(db, workspace=setup.workspace, clock=clock, points=40, name="王芳")
    li, _m2 = make_member(db, workspace=setup.workspace, clock=clock, points=70, name="李雷")
    gone, _m3 = make_member(db, workspace=setup.workspace, clock=clock, name="注销")
    gone.erased_at = clock.now()
    db.commit()
    # when the variable is loaded for all three
    urls = member_urls(setup.workspace.id, [wang, li, gone], settings=settings, clock=clock)
    # then the erased one gets none, and each link opens its own member's center
    assert sorted(urls) == sorted([wang.id, li.id])
    for customer_id, balance in ((wang.id, "40"), (li.id, "70")):
        assert urls[customer_id].startswith("http://127.0.0.1:8000/m/enter?t=")
        client.cookies.clear()
        opened = client.get(urls[customer_id].removeprefix("http://127.0.0.1:8000"))
        assert opened.status_code == 303
        assert f'data-testid="points-balance">{balance}<' in client.get("/m/").text
