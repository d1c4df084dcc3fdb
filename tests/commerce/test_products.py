"""Products (CRUD, CSV upsert) and the commerce settings, through the service and the API."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce import products
from siyu.commerce import settings as commerce_settings
from siyu.kit.clock import FrozenClock
from siyu.messaging.crypto import decrypt_credentials
from siyu.models import AuditEntry, CommerceSettings, Product
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_token, make_workspace

app, client = api_fixtures.app, api_fixtures.client  # the API fixtures, over the test's transaction


def _api(db: Session, clock: FrozenClock, scopes: list[str] | None = None) -> tuple[int, dict[str, str]]:
    ws = make_workspace(db, clock=clock)
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return ws.id, bearer(token)


def _count(db: Session, ws_id: int) -> int:
    return db.scalar(select(func.count()).select_from(Product).where(Product.workspace_id == ws_id)) or 0


def test_create_list_and_edit_a_product(client: TestClient, db: Session, clock: FrozenClock) -> None:
    # given an API token
    ws_id, headers = _api(db, clock)
    # when a product is created, listed, searched and edited
    body = {
        "sku": "SERUM-30",
        "name": "修护精华 30ml",
        "category": "精华",
        "price_fen": 29900,
        "repurchase_cycle_days": 30,
    }
    created = client.post("/api/v1/products", headers=headers, json=body)
    assert created.status_code == 201
    product_id = created.json()["id"]
    listed = client.get("/api/v1/products", headers=headers, params={"q": "精华"}).json()
    patched = client.patch(
        f"/api/v1/products/{product_id}", headers=headers, json={"price_fen": 25900, "is_active": False}
    )
    # then the values are exact and the changes audited
    assert [p["sku"] for p in listed["items"]] == ["SERUM-30"]
    assert (patched.status_code, patched.json()["price_fen"], patched.json()["is_active"]) == (200, 25900, False)
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "product").order_by(AuditEntry.id))
    assert list(actions) == ["create", "update"]
    assert _count(db, ws_id) == 1
    # and deleting it removes it (a second delete is a 404)
    assert client.delete(f"/api/v1/products/{product_id}", headers=headers).status_code == 204
    gone = client.delete(f"/api/v1/products/{product_id}", headers=headers)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "product_not_found")
    assert _count(db, ws_id) == 0


def test_duplicate_sku_and_bad_price_are_refused(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws_id, headers = _api(db, clock)
    client.post("/api/v1/products", headers=headers, json={"sku": "A", "name": "甲", "price_fen": 100})
    again = client.post("/api/v1/products", headers=headers, json={"sku": "A", "name": "乙", "price_fen": 100})
    negative = client.post("/api/v1/products", headers=headers, json={"sku": "B", "name": "乙", "price_fen": -1})
    assert (again.status_code, again.json()["error"]["code"], again.json()["error"]["details"]) == (
        409,
        "duplicate_sku",
        {"field": "sku"},
    )
    assert negative.status_code == 422
    assert _count(db, ws_id) == 1


def test_reader_cannot_write_products_or_settings(client: TestClient, db: Session, clock: FrozenClock) -> None:
    # given a token with commerce:read only
    ws_id, headers = _api(db, clock, scopes=["commerce:read"])
    # when it tries to write
    created = client.post("/api/v1/products", headers=headers, json={"sku": "A", "name": "甲", "price_fen": 100})
    put = client.put("/api/v1/commerce/settings", headers=headers, json={"unknown_customer": "park"})
    secret = client.post("/api/v1/commerce/webhook-secret", headers=headers)
    deleted = client.delete("/api/v1/products/1", headers=headers)
    # then each is 403 and nothing changed
    assert (created.status_code, put.status_code, secret.status_code, deleted.status_code) == (403, 403, 403, 403)
    assert _count(db, ws_id) == 0
    assert db.scalar(select(CommerceSettings).where(CommerceSettings.workspace_id == ws_id)) is None


CSV = (
    "sku,name,category,price,repurchase_cycle_days\n"
    "SERUM-30,修护精华 30ml,精华,299.00,30\n"
    "CREAM-50,面霜 50g,面霜,1299.5,\n"
    "BAD-1,坏价格,面霜,12.345,\n"
    ",没有编码,面霜,10,\n"
    "SERUM-30,重复,精华,1,\n"
    "NEW-2,,面霜,10,\n"
).encode()


def test_csv_upsert_reports_bad_rows_by_number_and_field(db: Session, clock: FrozenClock) -> None:
    # given a workspace with one product already
    ws = make_workspace(db, clock=clock)
    actor = Actor.system(ws.id)
    products.create_product(
        db, actor=actor, data=products.ProductIn(sku="CREAM-50", name="旧名", price_fen=100), clock=clock
    )
    # when a CSV with good and bad rows is uploaded
    report = products.upsert_products_csv(db, actor=actor, data=CSV, clock=clock)
    # then good rows are created/updated exactly, bad ones reported with row and field
    assert (report.rows, report.created, report.updated, report.rejected) == (6, 1, 1, 4)
    assert report.rejections == [
        {"row": 4, "field": "price", "reason": "'12.345' has more than two decimals"},
        {"row": 5, "field": "sku", "reason": "required, at most 64 characters"},
        {"row": 6, "field": "sku", "reason": "SKU 'SERUM-30' appears twice in the file"},
        {"row": 7, "field": "name", "reason": "required for a new product"},
    ]
    rows = {p.sku: (p.name, p.price_fen, p.repurchase_cycle_days) for p in db.scalars(select(Product))}
    assert rows == {"SERUM-30": ("修护精华 30ml", 29900, 30), "CREAM-50": ("面霜 50g", 129950, None)}


def test_csv_upsert_reads_gbk_with_chinese_headers(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    data = "商家编码,商品名称,品类,价格\nTEA-1,红茶礼盒,茶,88.8\n".encode("gbk")
    report = products.upsert_products_csv(db, actor=Actor.system(ws.id), data=data, clock=clock)
    assert (report.created, report.rejected) == (1, 0)
    assert db.scalar(select(Product.price_fen).where(Product.sku == "TEA-1")) == 8880


def test_csv_upload_over_the_api(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws_id, headers = _api(db, clock)
    response = client.post("/api/v1/products/csv", headers=headers, files={"file": ("p.csv", CSV, "text/csv")})
    assert (response.status_code, response.json()["created"], response.json()["rejected"]) == (200, 2, 4)
    no_sku = client.post("/api/v1/products/csv", headers=headers, files={"file": ("p.csv", b"name\nx\n", "text/csv")})
    assert (no_sku.status_code, no_sku.json()["error"]["details"]) == (422, {"field": "sku", "row": 1})
    assert _count(db, ws_id) == 2


def test_settings_default_update_and_secret_rotation(client: TestClient, db: Session, clock: FrozenClock) -> None:
    # given a workspace that never saved settings
    ws_id, headers = _api(db, clock)
    assert client.get("/api/v1/commerce/settings", headers=headers).json() == {
        "unknown_customer": "create",
        "restore_coupon_on_refund": True,
        "has_webhook_secret": False,
    }
    # when the policy changes and a secret is made, then made again
    put = client.put("/api/v1/commerce/settings", headers=headers, json={"unknown_customer": "park"})
    first = client.post("/api/v1/commerce/webhook-secret", headers=headers).json()
    second = client.post("/api/v1/commerce/webhook-secret", headers=headers).json()
    # then the policy is stored, the secret is shown once, stored encrypted, and the newest wins
    assert put.json() == {"unknown_customer": "park", "restore_coupon_on_refund": True, "has_webhook_secret": False}
    assert first["secret"] != second["secret"] and second["secret"].startswith("whsec_")
    row = db.scalar(select(CommerceSettings).where(CommerceSettings.workspace_id == ws_id))
    assert row is not None and second["secret"] not in (row.webhook_secret_encrypted or "")
    assert decrypt_credentials(row.webhook_secret_encrypted) == {"secret": second["secret"]}
    assert commerce_settings.webhook_secret(db, workspace_id=ws_id) == second["secret"]
    assert "secret" not in client.get("/api/v1/commerce/settings", headers=headers).json()
    bad = client.put("/api/v1/commerce/settings", headers=headers, json={"unknown_customer": "drop"})
    assert bad.status_code == 422
