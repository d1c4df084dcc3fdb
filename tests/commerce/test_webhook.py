"""The signed order webhook: signature and timestamp checks (401, nothing written), one order, a
batch with a bad row, a refund, and the message variables `tier` / `points` of the loyalty area."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.settings import rotate_webhook_secret
from siyu.commerce.webhook import sign
from siyu.kit.clock import FrozenClock
from siyu.loyalty import variables  # noqa: F401 (registers the loaders)
from siyu.messaging.content import load_variables
from siyu.models import Customer, Member, Order, Refund, Tier, Workspace
from tests.api import conftest as api_fixtures
from tests.conftest import NOW
from tests.factories import make_workspace
from tests.segments.factories import make_person

app, client = api_fixtures.app, api_fixtures.client  # the API fixtures, over the test's transaction


def _order(external_id: str = "TB1001", total: int = 29900, phone: str = "13800138000") -> dict[str, Any]:
    return {
        "platform": "taobao",
        "external_id": external_id,
        "identities": [{"type": "phone", "value": phone}],
        "total_fen": total,
        "paid_at": "2026-11-22T10:00:00+08:00",
        "items": [{"sku": "SERUM-30", "name": "修护精华", "amount_fen": total}],
    }


def _setup(db: Session, clock: FrozenClock) -> tuple[Workspace, str]:
    ws = make_workspace(db, clock=clock)
    secret = rotate_webhook_secret(db, actor=Actor.system(ws.id), clock=clock)
    db.commit()
    return ws, secret


def _post(
    client: TestClient,
    ws: Workspace,
    secret: str,
    payload: Any,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> Any:
    body = json.dumps(payload).encode()
    stamp = str(timestamp if timestamp is not None else int(NOW.timestamp()))
    headers = {
        "X-Siyu-Timestamp": stamp,
        "X-Siyu-Signature": signature or sign(secret, stamp, body),
        "Content-Type": "application/json",
    }
    return client.post(f"/hooks/orders/{ws.slug}", content=body, headers=headers)


def _orders(db: Session, ws: Workspace) -> int:
    return db.scalar(select(func.count()).select_from(Order).where(Order.workspace_id == ws.id)) or 0


def test_signed_order_is_ingested_once(client: TestClient, db: Session, clock: FrozenClock) -> None:
    # given a workspace with a webhook secret
    ws, secret = _setup(db, clock)
    # when the same signed order is posted twice
    first = _post(client, ws, secret, _order())
    again = _post(client, ws, secret, _order())
    # then it is created once, the retry is "unchanged"
    assert (first.status_code, first.json()["status"]) == (201, "created")
    assert (again.status_code, again.json()["status"], again.json()["order_id"]) == (
        200,
        "unchanged",
        first.json()["order_id"],
    )
    order = db.get(Order, first.json()["order_id"])
    assert order is not None and (order.total_fen, order.source) == (29900, "webhook")


def test_bad_signatures_are_401_and_write_nothing(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, secret = _setup(db, clock)
    now = int(NOW.timestamp())
    wrong_secret = _post(client, ws, "whsec_other", _order(), signature=sign("whsec_other", str(now), b"{}"))
    tampered = _post(client, ws, secret, _order(), signature=sign(secret, str(now), json.dumps(_order("X")).encode()))
    stale = _post(client, ws, secret, _order(), timestamp=now - 301)
    future = _post(client, ws, secret, _order(), timestamp=now + 301)
    no_header = client.post(f"/hooks/orders/{ws.slug}", content=json.dumps(_order()).encode())
    unknown = client.post("/hooks/orders/no-such-brand", content=b"{}", headers={"X-Siyu-Timestamp": str(now)})
    statuses = [r.status_code for r in (wrong_secret, tampered, stale, future, no_header, unknown)]
    assert statuses == [401] * 6
    assert stale.json()["error"] == {
        "code": "invalid_signature",
        "message": "X-Siyu-Timestamp is more than 5 minutes from now",
        "details": {"field": "X-Siyu-Timestamp"},
    }
    assert _orders(db, ws) == 0
    # a timestamp just inside the window is accepted
    assert _post(client, ws, secret, _order(), timestamp=now - 300).status_code == 201


def test_batch_reports_per_row_and_refund_goes_through(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, secret = _setup(db, clock)
    bad = _order("TB2")
    bad["total_fen"] = -5
    response = _post(client, ws, secret, {"orders": [_order("TB1"), bad, _order("TB3", phone="13900139000")]})
    rows = response.json()["results"]
    assert response.status_code == 200
    assert [(r["row"], r["status"]) for r in rows] == [(0, "created"), (1, "rejected"), (2, "created")]
    assert rows[1]["error"]["details"] == {"field": "orders[1].total_fen"}
    assert _orders(db, ws) == 2
    refund = {"platform": "taobao", "order_external_id": "TB1", "external_id": "R1", "amount_fen": 9900}
    refunded = _post(client, ws, secret, {"refund": refund})
    assert (refunded.status_code, refunded.json()["amount_fen"]) == (200, 9900)
    assert db.scalar(select(Refund.amount_fen).where(Refund.workspace_id == ws.id)) == 9900
    missing = _post(client, ws, secret, {"refund": refund | {"order_external_id": "NOPE"}})
    assert (missing.status_code, missing.json()["error"]["details"]) == (404, {"field": "refund.order_external_id"})


def test_single_bad_order_is_a_4xx_naming_the_field(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws, secret = _setup(db, clock)
    bad = _order()
    bad["items"][0]["amount_fen"] = 100
    response = _post(client, ws, secret, bad)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_order")
    not_json = client.post(
        f"/hooks/orders/{ws.slug}",
        content=b"nope",
        headers={
            "X-Siyu-Timestamp": str(int(NOW.timestamp())),
            "X-Siyu-Signature": sign(secret, str(int(NOW.timestamp())), b"nope"),
        },
    )
    assert (not_json.status_code, not_json.json()["error"]["details"]) == (422, {"field": "body"})
    assert _orders(db, ws) == 0


def test_tier_and_points_variables(db: Session, clock: FrozenClock) -> None:
    # given a member in 高级 with 320 points and a customer who is no member
    ws = make_workspace(db, clock=clock)
    tier = Tier(workspace_id=ws.id, name="高级", rank=1, threshold=1000, created_at=NOW, updated_at=NOW)
    db.add(tier)
    member: Customer = make_person(db, workspace=ws, created_at=NOW - timedelta(days=5))
    other: Customer = make_person(db, workspace=ws, created_at=NOW - timedelta(days=5))
    db.flush()
    db.add(
        Member(
            workspace_id=ws.id,
            customer_id=member.id,
            tier_id=tier.id,
            points_balance=320,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    db.flush()
    # when the variables load for both
    values = load_variables(db, ws.id, [member, other], {"tier", "points"})
    # then the member has exact values, the other 0 points and no tier
    assert values == {member.id: {"tier": "高级", "points": 320}, other.id: {"points": 0}}
