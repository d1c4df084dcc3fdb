"""The coupons API: templates CRUD, issuing (one, or a segment as a job), listing, redeeming and
voiding; bad bodies and missing scopes refused with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES
from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Coupon, CouponTemplate, Job, Order, OrderStatus, Role, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.commerce.coupons.factories import buyer
from tests.factories import make_token, make_workspace
from tests.segments.factories import make_segment

app = api_fixtures.app
client = api_fixtures.client

TEMPLATE = {
    "name": "满300减30",
    "kind": "amount_off",
    "value": 3000,
    "threshold_fen": 30_000,
    "valid_days": 14,
    "per_customer_limit": 1,
    "total_stock": 100,
    "channels": ["taobao", "jd"],
}


def _headers(db: Session, clock: FrozenClock, ws: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(
        db, clock=clock, workspace=ws, scopes=scopes or sorted(str(s) for s in ROLE_SCOPES[Role.OPERATOR])
    )
    db.commit()
    return bearer(token)


def _count(db: Session, model: type, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == ws.id)) or 0)


def test_template_crud_and_archive(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    created = client.post("/api/v1/coupon-templates", json=TEMPLATE, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["value"], body["issued_count"], body["channels"], body["status"]) == (
        3000,
        0,
        ["taobao", "jd"],
        "active",
    )
    changed = client.put(f"/api/v1/coupon-templates/{body['id']}", json=TEMPLATE | {"value": 5000}, headers=headers)
    assert changed.json()["value"] == 5000
    archived = client.post(f"/api/v1/coupon-templates/{body['id']}/archive", headers=headers)
    assert archived.json()["status"] == "archived"
    listed = client.get("/api/v1/coupon-templates", params={"status": "archived"}, headers=headers).json()
    assert [t["id"] for t in listed] == [body["id"]]
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.workspace_id == ws.id, AuditEntry.entity_type == "coupon_template")
    )
    assert sorted(actions) == ["archive", "create", "update"]


def test_changing_the_value_of_an_issued_template_is_a_409(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a ¥30-off template with one coupon issued
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    customer = buyer(db, workspace=ws, clock=clock)
    db.commit()
    template = client.post("/api/v1/coupon-templates", json=TEMPLATE, headers=headers).json()
    issue = {"template_id": template["id"], "customer_id": customer.id, "idempotency_key": "crm-1"}
    assert client.post("/api/v1/coupons", json=issue, headers=headers).status_code == 201
    # when it is changed to ¥3 off
    refused = client.put(f"/api/v1/coupon-templates/{template['id']}", json=TEMPLATE | {"value": 300}, headers=headers)
    # then 409 naming the field, and it is still ¥30 off; its stock may still change
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == {"field": "value", "issued_count": 1}
    assert client.get(f"/api/v1/coupon-templates/{template['id']}", headers=headers).json()["value"] == 3000
    more = client.put(
        f"/api/v1/coupon-templates/{template['id']}", json=TEMPLATE | {"total_stock": 200}, headers=headers
    )
    assert (more.status_code, more.json()["total_stock"], more.json()["value"]) == (200, 200, 3000)


def test_bad_templates_name_the_field(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    cases = [
        (TEMPLATE | {"kind": "percent_off", "value": 120}, "percent off must be between 1 and 99"),
        (TEMPLATE | {"valid_until": "2026-12-31T00:00:00+08:00"}, "either valid_days or fixed dates"),
        (TEMPLATE | {"kind": "gift", "value": 0}, "gift_name"),
        (TEMPLATE | {"threshold_fen": -1}, "threshold_fen"),
        (TEMPLATE | {"offer": "member_day", "offer_settings": {"weekday": 9}}, "offer_settings.weekday"),
        (TEMPLATE | {"offer": "tier_welcome"}, "offer_settings.tier_id"),
    ]
    for body, needle in cases:
        response = client.post("/api/v1/coupon-templates", json=body, headers=headers)
        assert response.status_code == 422, body
        assert needle in response.text, response.text
    assert _count(db, CouponTemplate, ws) == 0


def test_issue_list_redeem_and_void(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a template and a customer
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    customer = buyer(db, workspace=ws, clock=clock)
    db.commit()
    template = client.post(
        "/api/v1/coupon-templates", json=TEMPLATE | {"per_customer_limit": 2}, headers=headers
    ).json()
    issue = {"template_id": template["id"], "customer_id": customer.id, "idempotency_key": "crm-1"}
    # when a coupon is issued twice with the same key, and once more with another
    first = client.post("/api/v1/coupons", json=issue, headers=headers)
    again = client.post("/api/v1/coupons", json=issue, headers=headers)
    second = client.post("/api/v1/coupons", json=issue | {"idempotency_key": "crm-2"}, headers=headers)
    # then two coupons exist; the retry answered 200 with the first
    assert (first.status_code, again.status_code, second.status_code) == (201, 200, 201)
    assert again.json()["code"] == first.json()["code"]
    assert first.json()["expires_at"] == "2026-12-06T16:00:00Z"
    page = client.get("/api/v1/coupons", params={"customer_id": customer.id, "limit": 1}, headers=headers).json()
    assert [c["id"] for c in page["items"]] == [second.json()["id"]]
    rest = client.get("/api/v1/coupons", params={"cursor": page["next_cursor"]}, headers=headers).json()
    assert [c["id"] for c in rest["items"]] == [first.json()["id"]]
    # a paid order redeems the first by code
    order = Order(
        workspace_id=ws.id,
        customer_id=customer.id,
        platform="jd",
        external_id="JD9",
        status=OrderStatus.PAID,
        total_fen=32_000,
        discount_fen=3_000,
        paid_at=datetime(2026, 11, 23, 3, tzinfo=UTC),
        created_at=clock.now(),
    )
    db.add(order)
    db.commit()
    code = first.json()["code"]
    redeemed = client.post(f"/api/v1/coupons/{code.lower()}/redeem", json={"order_id": order.id}, headers=headers)
    assert redeemed.status_code == 200, redeemed.text
    assert (redeemed.json()["state"], redeemed.json()["discount_fen"]) == ("redeemed", 3000)
    # the second cannot be used by the same order, nor the first by another
    used = client.post(f"/api/v1/coupons/{second.json()['code']}/redeem", json={"order_id": order.id}, headers=headers)
    assert used.status_code == 409 and used.json()["error"]["code"] == "coupon_not_usable"
    # voiding needs a reason; the redeemed one cannot be voided
    assert (
        client.post(f"/api/v1/coupons/{second.json()['id']}/void", json={"reason": ""}, headers=headers).status_code
        == 422
    )
    voided = client.post(f"/api/v1/coupons/{second.json()['id']}/void", json={"reason": "发错了"}, headers=headers)
    assert (voided.json()["state"], voided.json()["void_reason"]) == ("void", "发错了")
    refused = client.post(f"/api/v1/coupons/{first.json()['id']}/void", json={"reason": "x"}, headers=headers)
    assert refused.status_code == 409
    detail = client.get(f"/api/v1/coupons/{second.json()['id']}", headers=headers).json()
    assert [(e["kind"], e["reason"]) for e in detail["events"]] == [("issued", "api"), ("voided", "发错了")]
    states = client.get("/api/v1/coupons", params={"state": "void"}, headers=headers).json()["items"]
    assert [c["id"] for c in states] == [second.json()["id"]]


def test_issue_to_a_segment_is_a_job(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    ids = [buyer(db, workspace=ws, clock=clock).id for _ in range(3)]
    segment = make_segment(db, workspace=ws, clock=clock, members=ids)
    db.commit()
    template = client.post("/api/v1/coupon-templates", json=TEMPLATE, headers=headers).json()
    response = client.post(
        "/api/v1/coupons", json={"template_id": template["id"], "segment_id": segment.id}, headers=headers
    )
    assert response.status_code == 202, response.text
    job = db.get(Job, response.json()["id"])
    assert job is not None and job.kind == "issue_coupons_to_segment"
    assert job.args == {"template_id": template["id"], "segment_id": segment.id, "actor": job.args["actor"]}
    bad = client.post("/api/v1/coupons", json={"template_id": template["id"]}, headers=headers)
    assert bad.status_code == 422


def test_without_write_scope_nothing_changes(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    admin = _headers(db, clock, ws)
    reader = _headers(db, clock, ws, scopes=["commerce:read"])
    customer = buyer(db, workspace=ws, clock=clock)
    db.commit()
    template = client.post("/api/v1/coupon-templates", json=TEMPLATE, headers=admin).json()
    coupon = client.post(
        "/api/v1/coupons",
        json={"template_id": template["id"], "customer_id": customer.id, "idempotency_key": "a"},
        headers=admin,
    ).json()
    assert client.post("/api/v1/coupon-templates", json=TEMPLATE | {"name": "x"}, headers=reader).status_code == 403
    denied = client.post(
        "/api/v1/coupons",
        json={"template_id": template["id"], "customer_id": customer.id, "idempotency_key": "b"},
        headers=reader,
    )
    assert denied.status_code == 403
    assert client.post(f"/api/v1/coupons/{coupon['id']}/void", json={"reason": "x"}, headers=reader).status_code == 403
    assert client.get("/api/v1/coupons", headers=reader).status_code == 200
    nobody = _headers(db, clock, ws, scopes=["customers:read"])
    assert client.get("/api/v1/coupons", headers=nobody).status_code == 403
    assert _count(db, CouponTemplate, ws) == 1
    assert _count(db, Coupon, ws) == 1
    assert db.scalar(select(Coupon.state).where(Coupon.id == coupon["id"])) == "issued"
