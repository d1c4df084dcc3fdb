"""The rewards API: CRUD, the member's mall, redeeming (retries, refusals), the fulfilment queue
and its permissions."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES
from siyu.kit.clock import FrozenClock
from siyu.models import Member, PointsEntry, Redemption, Reward, Role, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_token, make_workspace
from tests.loyalty.member_tasks.factories import make_member
from tests.loyalty.rewards.factories import ADDRESS

app = api_fixtures.app
client = api_fixtures.client

GIFT = {"name": "保温杯", "kind": "gift", "points_price": 300, "stock": 2, "per_member_limit": 1}


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_redeem_ship_deliver_through_the_api(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an operator, a store-manager-like fulfiller (admin here) and a member with 500 points
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    analyst = _headers(db, clock, ws, Role.ANALYST)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    db.commit()
    cid = member.customer_id
    # when the operator creates a gift and the member redeems it (and retries)
    reward = client.post("/api/v1/loyalty/rewards", headers=operator, json=GIFT)
    assert reward.status_code == 201, reward.text
    body = {"reward_id": reward.json()["id"], "idempotency_key": "h5-1", "address": ADDRESS}
    redeemed = client.post(f"/api/v1/members/{cid}/redemptions", headers=operator, json=body)
    retried = client.post(f"/api/v1/members/{cid}/redemptions", headers=operator, json=body)
    mall = client.get(f"/api/v1/members/{cid}/rewards", headers=operator)
    queue = client.get("/api/v1/redemptions", headers=analyst, params={"status": "awaiting_shipment"})
    # then it was redeemed once, the analyst sees a masked phone, and the mall says the limit is reached
    assert redeemed.status_code == 201, redeemed.text
    assert (retried.status_code, retried.json()["id"]) == (200, redeemed.json()["id"])
    assert redeemed.json()["address"]["phone"] == "+8613800138000"
    assert queue.json()["items"][0]["address"]["phone"] == "138****8000"
    assert mall.json()["balance"] == 200
    assert [(i["reward"]["name"], i["can_redeem"], i["reason"]) for i in mall.json()["items"]] == [
        ("保温杯", False, "limit_reached")
    ]
    rid = redeemed.json()["id"]
    # when the analyst tries to ship, then the operator ships and delivers
    refused = client.post(f"/api/v1/redemptions/{rid}/ship", headers=analyst, json={"tracking_no": "SF1"})
    shipped = client.post(f"/api/v1/redemptions/{rid}/ship", headers=operator, json={"tracking_no": "SF1"})
    delivered = client.post(f"/api/v1/redemptions/{rid}/deliver", headers=operator)
    cancelled = client.post(f"/api/v1/redemptions/{rid}/cancel", headers=operator, json={"reason": "晚了"})
    # then the analyst was forbidden and the gift went shipped → delivered; cancelling now is refused
    assert refused.status_code == 403
    assert (shipped.json()["status"], shipped.json()["tracking_no"]) == ("shipped", "SF1")
    assert delivered.json()["status"] == "delivered"
    assert (cancelled.status_code, cancelled.json()["error"]["code"]) == (409, "invalid_transition")
    listed = client.get(f"/api/v1/members/{cid}/redemptions", headers=operator).json()
    assert [(r["id"], r["status"]) for r in listed["items"]] == [(rid, "delivered")]


def test_refusals_are_clear_and_write_nothing(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a member with 100 points, a 300-point gift, and a sold-out privilege
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    member = make_member(db, workspace=ws, clock=clock, points=100)
    db.commit()
    cid = member.customer_id
    gift = client.post("/api/v1/loyalty/rewards", headers=operator, json=GIFT).json()
    sold_out = client.post(
        "/api/v1/loyalty/rewards",
        headers=operator,
        json={"name": "专属客服", "kind": "privilege", "points_price": 10, "stock": 0},
    ).json()
    url = f"/api/v1/members/{cid}/redemptions"
    # when the member redeems without enough points, the sold-out one, and a gift with a bad phone
    poor = client.post(
        url, headers=operator, json={"reward_id": gift["id"], "idempotency_key": "a", "address": ADDRESS}
    )
    empty = client.post(url, headers=operator, json={"reward_id": sold_out["id"], "idempotency_key": "b"})
    bad_phone = client.post(
        url,
        headers=operator,
        json={"reward_id": gift["id"], "idempotency_key": "c", "address": {**ADDRESS, "phone": "1"}},
    )
    unknown = client.post(url, headers=operator, json={"reward_id": 999_999, "idempotency_key": "d"})
    # then each is refused with its code, and no points or redemptions moved
    assert (poor.status_code, poor.json()["error"]["code"]) == (409, "insufficient_points")
    assert (empty.status_code, empty.json()["error"]["code"]) == (409, "out_of_stock")
    assert (bad_phone.status_code, bad_phone.json()["error"]["details"]) == (422, {"field": "address.phone"})
    assert unknown.status_code == 404
    assert _count(db, Redemption) == 0
    db.expire_all()
    assert db.get(Member, member.id).points_balance == 100  # type: ignore[union-attr]
    assert _count(db, PointsEntry) == 1


def test_reward_crud_validation_and_permissions(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an operator and an analyst
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    analyst = _headers(db, clock, ws, Role.ANALYST)
    # when rewards are created well and badly, updated, retired, and the analyst tries to create one
    created = client.post("/api/v1/loyalty/rewards", headers=operator, json=GIFT)
    url = f"/api/v1/loyalty/rewards/{created.json()['id']}"
    restocked = client.put(url, headers=operator, json={**GIFT, "stock": 50})
    rekinded = client.put(url, headers=operator, json={**GIFT, "kind": "privilege"})
    no_template = client.post("/api/v1/loyalty/rewards", headers=operator, json={**GIFT, "kind": "coupon"})
    bad_tier = client.post("/api/v1/loyalty/rewards", headers=operator, json={**GIFT, "visible_tier_ids": [999]})
    bad_segment = client.post("/api/v1/loyalty/rewards", headers=operator, json={**GIFT, "visible_segment_id": 999})
    forbidden = client.post("/api/v1/loyalty/rewards", headers=analyst, json=GIFT)
    retired = client.delete(url, headers=operator)
    # then only the good one exists, restocked and retired; the bad ones name their field
    assert created.status_code == 201, created.text
    assert (restocked.status_code, restocked.json()["stock"]) == (200, 50)
    assert rekinded.json()["error"]["details"] == {"field": "kind"}
    assert no_template.json()["error"]["details"] == {"field": "coupon_template_id"}
    assert bad_tier.json()["error"]["details"] == {"field": "visible_tier_ids"}
    assert bad_segment.json()["error"]["details"] == {"field": "visible_segment_id"}
    assert forbidden.status_code == 403
    assert retired.json()["is_active"] is False
    assert db.scalars(select(Reward.stock).where(Reward.workspace_id == ws.id)).all() == [50]
    assert client.get("/api/v1/loyalty/rewards", headers=analyst, params={"include_inactive": False}).json() == []
