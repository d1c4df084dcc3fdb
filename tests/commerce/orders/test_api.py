"""The orders API: ingest one (201/200/202/409/422) or a batch (per-row results), list with filters
and cursor, detail, refunds, parked orders; staff see only their customers' orders."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES
from siyu.commerce.errors import OrderNotFound
from siyu.commerce.orders import parked, service
from siyu.commerce.orders.ingest import ingest_order
from siyu.kit.clock import FrozenClock
from siyu.models import (
    CommerceSettings,
    Customer,
    Order,
    OrderSource,
    Refund,
    Role,
    UnknownCustomerPolicy,
    Workspace,
)
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.commerce.orders.factories import order_in
from tests.factories import actor_for, make_customer, make_staff, make_token, make_workspace

app = api_fixtures.app
client = api_fixtures.client

ORDER: dict[str, Any] = {
    "platform": "jd",
    "external_id": "JD1001",
    "identities": [{"type": "phone", "value": "13800138000"}],
    "total_fen": 20_900,
    "shipping_fen": 1_000,
    "paid_at": "2026-11-20T12:00:00+08:00",
    "items": [{"sku": "SKU-1", "name": "洗面奶", "quantity": 1, "amount_fen": 19_900}],
}


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role = Role.OPERATOR) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def _count(db: Session, model: type, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == ws.id)) or 0)


def test_ingest_one_order_then_again(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    # when an order is posted, then posted again, then with another total
    created = client.post("/api/v1/orders", json=ORDER, headers=headers)
    again = client.post("/api/v1/orders", json=ORDER, headers=headers)
    other = ORDER | {"total_fen": 19_900, "shipping_fen": 0}
    conflict = client.post("/api/v1/orders", json=other, headers=headers)
    # then 201, 200 with the same order, and 409 naming the fields
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "created"
    assert (body["order"]["total_fen"], body["order"]["net_fen"], body["order"]["paid_at"]) == (
        20_900,
        20_900,
        "2026-11-20T04:00:00Z",
    )
    assert (again.status_code, again.json()["status"], again.json()["order"]["id"]) == (
        200,
        "unchanged",
        body["order"]["id"],
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "order_conflict"
    assert conflict.json()["error"]["details"]["fields"] == ["total_fen", "shipping_fen"]
    assert _count(db, Order, ws) == 1


def test_negative_amount_is_a_422_naming_the_field(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    bad = ORDER | {"items": [{"sku": "SKU-1", "amount_fen": -19_900}], "total_fen": -18_900}
    response = client.post("/api/v1/orders", json=bad, headers=headers)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["total_fen", "items.0.amount_fen"]
    assert (_count(db, Order, ws), _count(db, Customer, ws)) == (0, 0)


def test_unknown_buyer_parked_answers_202(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    db.add(CommerceSettings(workspace_id=ws.id, unknown_customer=UnknownCustomerPolicy.PARK, updated_at=clock.now()))
    headers = _headers(db, clock, ws)
    response = client.post("/api/v1/orders", json=ORDER, headers=headers)
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["order"], body["error"]["code"]) == ("parked", None, "unknown_customer")
    listed = client.get("/api/v1/parked-orders", headers=headers).json()
    assert [(p["external_id"], p["identities"], p["total_fen"]) for p in listed["items"]] == [
        ("JD1001", ["phone:+8613800138000"], 20_900)
    ]


def test_batch_gives_one_result_per_row(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    rows = [
        ORDER,
        ORDER | {"external_id": "JD1002", "total_fen": -1},
        ORDER | {"external_id": "JD1003", "identities": [{"type": "phone", "value": "12"}]},
        ORDER,
    ]
    response = client.post("/api/v1/orders/batch", json={"orders": rows}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["unchanged"], body["parked"], body["rejected"]) == (1, 1, 0, 2)
    assert [(r["row"], r["status"]) for r in body["results"]] == [
        (0, "created"),
        (1, "rejected"),
        (2, "rejected"),
        (3, "unchanged"),
    ]
    assert body["results"][1]["error"]["details"] == {"field": "total_fen"}
    assert body["results"][2]["error"]["details"] == {"field": "phone"}
    too_many = client.post("/api/v1/orders/batch", json={"orders": [ORDER] * 1001}, headers=headers)
    assert too_many.status_code == 422
    assert _count(db, Order, ws) == 1


def test_list_detail_and_refund(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    for n in range(3):
        row = ORDER | {"external_id": f"JD20{n}", "paid_at": f"2026-11-1{n}T12:00:00+08:00"}
        assert client.post("/api/v1/orders", json=row, headers=headers).status_code == 201
    client.post("/api/v1/orders", json=ORDER | {"platform": "taobao", "external_id": "TB1"}, headers=headers)
    # the list: newest paid first, paged by cursor, filtered by platform and by the buyer's phone
    first = client.get("/api/v1/orders", params={"platform": "jd", "limit": 2}, headers=headers).json()
    assert [o["external_id"] for o in first["items"]] == ["JD202", "JD201"]
    rest = client.get(
        "/api/v1/orders", params={"platform": "jd", "limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).json()
    assert ([o["external_id"] for o in rest["items"]], rest["next_cursor"]) == (["JD200"], None)
    by_phone = client.get("/api/v1/orders", params={"q": "138 0013 8000"}, headers=headers).json()
    assert len(by_phone["items"]) == 4
    by_number = client.get("/api/v1/orders", params={"q": "TB1"}, headers=headers).json()
    assert [o["platform"] for o in by_number["items"]] == ["taobao"]
    ranged = client.get(
        "/api/v1/orders",
        params={"paid_from": "2026-11-11T00:00:00+08:00", "paid_to": "2026-11-12T00:00:00+08:00"},
        headers=headers,
    ).json()
    assert [o["external_id"] for o in ranged["items"]] == ["JD201"]
    # a refund, then the detail with lines and refunds
    order_id = first["items"][0]["id"]
    refund = client.post(
        f"/api/v1/orders/{order_id}/refunds",
        json={"external_id": "RF1", "items": [{"sku": "SKU-1", "amount_fen": 5_000}], "reason": "破损"},
        headers=headers,
    )
    assert refund.status_code == 201, refund.text
    retry = client.post(
        f"/api/v1/orders/{order_id}/refunds",
        json={"external_id": "RF1", "items": [{"sku": "SKU-1", "amount_fen": 5_000}], "reason": "破损"},
        headers=headers,
    )
    assert (retry.status_code, retry.json()["id"]) == (200, refund.json()["id"])
    too_much = client.post(
        f"/api/v1/orders/{order_id}/refunds", json={"external_id": "RF2", "amount_fen": 16_000}, headers=headers
    )
    assert too_much.status_code == 422
    assert too_much.json()["error"]["details"] == {"field": "amount_fen", "left_fen": 15_900}
    detail = client.get(f"/api/v1/orders/{order_id}", headers=headers).json()
    assert (detail["status"], detail["refunded_fen"], detail["net_fen"]) == ("partially_refunded", 5_000, 15_900)
    assert [(i["sku"], i["refunded_fen"]) for i in detail["items"]] == [("SKU-1", 5_000)]
    assert [(r["external_id"], r["amount_fen"], r["reason"]) for r in detail["refunds"]] == [("RF1", 5_000, "破损")]
    assert detail["coupon"] is None
    missing = client.get(f"/api/v1/orders/{order_id + 1000}", headers=headers)
    assert missing.status_code == 404


def test_staff_see_only_their_customers_orders(db: Session, clock: FrozenClock) -> None:
    # given two customers, one owned by a staff member, each with an order
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    staff = make_staff(db, workspace=ws, clock=clock)
    mine = make_customer(db, actor=actor, clock=clock, phone="13800138001", owner_staff_id=staff.id).customer
    other = make_customer(db, actor=actor, clock=clock, phone="13800138002").customer
    for customer, number in ((mine, "M1"), (other, "O1")):
        order = order_in(customer_id=customer.id, external_id=number)
        assert ingest_order(db, actor=actor, order=order, source=OrderSource.API, clock=clock).status == "created"
    staff_actor = actor_for(ws, role=Role.STAFF, staff_id=staff.id)
    # when the staff member lists orders, searches the other's phone and opens the other's order
    listed = service.list_orders(db, actor=staff_actor, flt=service.OrderFilter())
    searched = service.list_orders(db, actor=staff_actor, flt=service.OrderFilter(q="13800138002"))
    other_order = db.scalars(select(Order).where(Order.external_id == "O1")).one()
    # then only their customer's order shows, and the other is not found
    assert [o.external_id for o in listed.items] == ["M1"]
    assert searched.items == []
    with pytest.raises(OrderNotFound):
        service.order_detail(db, actor=staff_actor, order_id=other_order.id)
    assert parked.list_parked(db, actor=staff_actor).items == []


def test_reading_tokens_cannot_write(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given an order, and a token with the analyst's scopes (commerce:read only)
    ws = make_workspace(db, clock=clock)
    writer = _headers(db, clock, ws)
    order_id = client.post("/api/v1/orders", json=ORDER, headers=writer).json()["order"]["id"]
    reader = _headers(db, clock, ws, Role.ANALYST)
    # when it posts an order, a batch and a refund
    posted = client.post("/api/v1/orders", json=ORDER | {"external_id": "S1"}, headers=reader)
    batch = client.post("/api/v1/orders/batch", json={"orders": [ORDER | {"external_id": "S2"}]}, headers=reader)
    refunded = client.post(f"/api/v1/orders/{order_id}/refunds", json={"external_id": "X"}, headers=reader)
    # then each is a 403 and nothing changed; reading works
    assert (posted.status_code, batch.status_code, refunded.status_code) == (403, 403, 403)
    assert (_count(db, Order, ws), _count(db, Refund, ws)) == (1, 0)
    assert client.get(f"/api/v1/orders/{order_id}", headers=reader).json()["refunded_fen"] == 0
