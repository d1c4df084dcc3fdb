"""The loyalty API: program settings, the tier ladder, a member's account, points history and
adjustments, tier history, paid and manual tiers; scopes refused with nothing changed."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.purchases import apply_order
from siyu.models import AuditEntry, LoyaltyProgram, PointsEntry, Role, Tier, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_token, make_workspace
from tests.loyalty.tiers.factories import make_ladder, new_customer, place_order

app = api_fixtures.app
client = api_fixtures.client


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def _count(db: Session, model: Any, *where: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


PROGRAM = {
    "points_per_yuan": 2,
    "expiry_policy": "month_end",
    "expiry_n": 12,
    "expiring_notice_days": 15,
    "tier_basis": "spend",
    "tier_window": "calendar_year",
    "tier_window_days": 365,
    "review_period": "yearly",
    "grace_days": 60,
}


def test_program_settings_are_read_and_changed_by_scope(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given a workspace, an analyst (read only) and an operator
    ws = make_workspace(db, clock=clock)
    analyst, operator = _headers(db, clock, ws, Role.ANALYST), _headers(db, clock, ws, Role.OPERATOR)
    # when the analyst reads and tries to change, and the operator changes it and sends a bad body
    read = client.get("/api/v1/loyalty/program", headers=analyst)
    refused = client.put("/api/v1/loyalty/program", headers=analyst, json=PROGRAM)
    changed = client.put("/api/v1/loyalty/program", headers=operator, json=PROGRAM)
    bad = client.put("/api/v1/loyalty/program", headers=operator, json=PROGRAM | {"points_per_yuan": -1})
    # then the default is shown, the analyst is refused, the change is stored and audited
    assert read.status_code == 200 and read.json()["points_per_yuan"] == 1
    assert read.json()["expiry_policy"] == "year_end"
    assert refused.status_code == 403
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in PROGRAM} == PROGRAM
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "points_per_yuan"
    program = db.scalars(select(LoyaltyProgram).where(LoyaltyProgram.workspace_id == ws.id)).one()
    db.refresh(program)
    assert (program.points_per_yuan, program.grace_days) == (2, 60)
    assert _count(db, AuditEntry, AuditEntry.workspace_id == ws.id, AuditEntry.action == "loyalty_program.update") == 1


def test_the_tier_ladder_is_checked(db: Session, database: Database, clock: FrozenClock, client: TestClient) -> None:
    # given an operator
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    base = {"name": "普通", "rank": 0}
    silver = {"name": "高级", "rank": 1, "threshold": 100_000, "points_multiplier_pct": 120}
    # when they build 普通 and 高级, then a 尊享 below 高级, a paid tier without a price, and a paid one
    created = [client.post("/api/v1/loyalty/tiers", headers=operator, json=body) for body in (base, silver)]
    low = client.post("/api/v1/loyalty/tiers", headers=operator, json={"name": "尊享", "rank": 2, "threshold": 50_000})
    no_price = client.post("/api/v1/loyalty/tiers", headers=operator, json={"name": "黑卡", "rank": 3, "is_paid": True})
    black = client.post(
        "/api/v1/loyalty/tiers",
        headers=operator,
        json={
            "name": "黑卡",
            "rank": 3,
            "is_paid": True,
            "price_fen": 29_900,
            "validity_days": 365,
            "benefits": {"free_shipping": True, "member_price_pct": 90},
        },
    )
    unknown_benefit = client.put(
        f"/api/v1/loyalty/tiers/{created[1].json()['id']}", headers=operator, json=silver | {"benefits": {"vip": 1}}
    )
    # then the good ones are created and the bad ones refused naming the field
    assert [r.status_code for r in created] == [201, 201]
    assert (low.status_code, low.json()["error"]["code"], low.json()["error"]["details"]) == (
        422,
        "invalid_tier",
        {"field": "threshold"},
    )
    assert no_price.status_code == 422 and no_price.json()["error"]["details"] == {"field": "price_fen"}
    assert black.status_code == 201 and black.json()["benefits"] == {"free_shipping": True, "member_price_pct": 90}
    assert unknown_benefit.status_code == 422
    listed = client.get("/api/v1/loyalty/tiers", headers=operator).json()
    assert [(t["name"], t["rank"], t["threshold"]) for t in listed] == [
        ("普通", 0, 0),
        ("高级", 1, 100_000),
        ("黑卡", 3, 0),
    ]
    # and a tier a member is in cannot be deleted, an empty one can
    customer = new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=100_000), clock=clock)
    db.commit()
    in_use = client.delete(f"/api/v1/loyalty/tiers/{created[1].json()['id']}", headers=operator)
    gone = client.delete(f"/api/v1/loyalty/tiers/{black.json()['id']}", headers=operator)
    assert (in_use.status_code, in_use.json()["error"]["code"]) == (409, "tier_in_use")
    assert gone.status_code == 204
    assert _count(db, Tier, Tier.workspace_id == ws.id) == 2


def test_a_member_account_history_and_adjustments(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given a 高级 member with 1,500 points from one order, and staff / operator tokens
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=150_000), clock=clock)
    nobody = new_customer(db, workspace=ws, clock=clock)
    staff, operator = _headers(db, clock, ws, Role.STAFF), _headers(db, clock, ws, Role.OPERATOR)
    url = f"/api/v1/members/{customer.id}"
    # when staff read the account and try to adjust; the operator adjusts (twice, same key)
    account = client.get(url, headers=staff)
    refused = client.post(
        f"{url}/points/adjustments", headers=staff, json={"points": 5, "reason": "x", "idempotency_key": "k"}
    )
    body = {"points": -200, "reason": "重复发放扣回", "idempotency_key": "adj-1"}
    adjusted = [client.post(f"{url}/points/adjustments", headers=operator, json=body) for _ in range(2)]
    no_reason = client.post(
        f"{url}/points/adjustments", headers=operator, json=body | {"reason": " ", "idempotency_key": "adj-2"}
    )
    history = client.get(f"{url}/points", headers=staff, params={"limit": 1})
    changes = client.get(f"{url}/tier-changes", headers=staff)
    missing = client.get(f"/api/v1/members/{nobody.id}", headers=staff)
    # then the account shows tier, progress and balance exactly
    assert account.status_code == 200, account.text
    shown = account.json()
    assert shown["tier"] == {"id": ladder.silver.id, "name": "高级", "rank": 1}
    assert (shown["points_balance"], shown["progress"]["qualifying_value"], shown["progress"]["to_next"]) == (
        1500,
        150_000,
        350_000,
    )
    assert shown["progress"]["next_tier"]["name"] == "尊享" and shown["expiring"] == []
    # and staff may not adjust; the operator's retry returns the same entry; a blank reason is refused
    assert refused.status_code == 403
    assert [r.status_code for r in adjusted] == [201, 201]
    assert adjusted[0].json()["id"] == adjusted[1].json()["id"]
    assert (adjusted[0].json()["amount"], adjusted[0].json()["balance_after"]) == (-200, 1300)
    assert no_reason.status_code == 422 and no_reason.json()["error"]["details"] == {"field": "reason"}
    assert _count(db, PointsEntry, PointsEntry.workspace_id == ws.id) == 2
    # and the history pages newest first with the reasons; the tier history says why
    assert [(e["amount"], e["description"]) for e in history.json()["items"]] == [(-200, "重复发放扣回")]
    assert history.json()["next_cursor"] is not None
    assert [(c["reason"], c["to_tier_id"]) for c in changes.json()["items"]] == [
        ("qualified", ladder.silver.id),
        ("joined", ladder.base.id),
    ]
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "member_not_found")


def test_paid_and_manual_tiers(db: Session, database: Database, clock: FrozenClock, client: TestClient) -> None:
    # given the ladder, a customer, and analyst / operator tokens
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    analyst, operator = _headers(db, clock, ws, Role.ANALYST), _headers(db, clock, ws, Role.OPERATOR)
    url = f"/api/v1/members/{customer.id}"
    # when the analyst tries both; the operator sells 黑卡 and sets 尊享 by hand (reason required)
    refused_paid = client.post(
        f"{url}/paid-tier", headers=analyst, json={"tier_id": ladder.black.id, "idempotency_key": "p"}
    )
    refused_manual = client.post(f"{url}/tier", headers=analyst, json={"tier_id": ladder.gold.id, "reason": "VIP"})
    assert (refused_paid.status_code, refused_manual.status_code) == (403, 403)
    assert client.get(url, headers=analyst).status_code == 404  # nothing was created
    paid = client.post(f"{url}/paid-tier", headers=operator, json={"tier_id": ladder.black.id, "idempotency_key": "p"})
    blank = client.post(f"{url}/tier", headers=operator, json={"tier_id": ladder.gold.id, "reason": ""})
    manual = client.post(f"{url}/tier", headers=operator, json={"tier_id": ladder.gold.id, "reason": "签约大客户"})
    # then the member has 黑卡 (paid) over 尊享 (earned), and the manual change is audited
    assert paid.status_code == 200, paid.text
    assert paid.json()["tier"]["name"] == "黑卡" and paid.json()["paid_tier_until"] is not None
    assert blank.status_code == 422 and blank.json()["error"]["details"] == {"field": "reason"}
    assert manual.status_code == 200
    assert (manual.json()["tier"]["name"], manual.json()["earned_tier"]["name"]) == ("黑卡", "尊享")
    assert _count(db, AuditEntry, AuditEntry.workspace_id == ws.id, AuditEntry.action == "member.tier_set") == 1
