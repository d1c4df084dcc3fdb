"""Order imports: layouts recognised by their header, yuan → fen exactly, bad rows reported by row
number and field with their order left out, the job over the API, and re-imports changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.orders.importing.layouts import CellError, detect_layout, yuan_to_fen
from siyu.commerce.orders.importing.service import run_order_import
from siyu.db import Database
from siyu.jobs.service import run_job
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import Order, OrderItem, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_token, make_workspace

TEMPLATE = (
    "平台,订单号,手机号,付款时间,SKU,商品名称,数量,金额,运费\n"
    "taobao,T1,13800138000,2026-11-20 10:00:00,SERUM-30,精华,1,299.00,10\n"
    "taobao,T1,13800138000,2026-11-20 10:00:00,CREAM-50,面霜,2,100.50,\n"
    "jd,J1,13900139000,2026-11-21 09:30,TEA-1,红茶,1,12.345,\n"
    "jd,J1,13900139000,2026-11-21 09:30,TEA-2,绿茶,1,10,\n"
    "youzan,Y1,13700137000,not a time,CUP-1,杯子,1,5,\n"
    "pos,P1,13600136000,2026-11-22 18:00:00,CUP-1,杯子,1,5,\n"
)
TAOBAO = (
    "订单编号,买家会员名,买家实际支付金额,买家应付邮费,订单付款时间,宝贝标题,商家编码,宝贝总数量,收货人手机\n"
    '2981,tb_nick_1,"1,299.00",0.00,2026-11-19 20:00:01,修护精华礼盒,GIFT-1,1,13800138000\n'
    "2982,tb_nick_2,59.90,0.00,,未付款的订单,GIFT-2,1,13900139000\n"
)

app, client = api_fixtures.app, api_fixtures.client  # the API fixtures, over the test's transaction


def _file(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _count(db: Session, ws: Workspace) -> int:
    return db.scalar(select(func.count()).select_from(Order).where(Order.workspace_id == ws.id)) or 0


def test_template_rows_group_into_orders_and_bad_rows_are_reported(
    db: Session, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    # given siyu's template with two good orders and two orders holding a bad row
    ws = make_workspace(db, clock=clock)
    db.commit()
    path = _file(tmp_path, "orders.csv", TEMPLATE)
    # when it is imported
    report = run_order_import(database.transaction, actor=Actor.system(ws.id), path=path, clock=clock)
    # then the good orders are written whole, the bad ones named by row and field, nothing of them written
    assert (report.layout, report.rows, report.orders, report.created, report.rejected) == ("siyu", 6, 4, 2, 2)
    assert report.rejections == [
        {"row": 4, "field": "金额", "order_no": "J1", "reason": "'12.345' has more than two decimals"},
        {
            "row": 6,
            "field": "付款时间",
            "order_no": "Y1",
            "reason": "'not a time' is not a time (use 2026-11-23 10:00:00)",
        },
    ]
    t1 = db.scalar(select(Order).where(Order.external_id == "T1"))
    assert t1 is not None and (t1.total_fen, t1.shipping_fen, t1.source) == (40950, 1000, "import")
    items = db.execute(
        select(OrderItem.sku, OrderItem.quantity, OrderItem.amount_fen).where(OrderItem.order_id == t1.id)
    )
    assert sorted(items) == [("CREAM-50", 2, 10050), ("SERUM-30", 1, 29900)]
    assert t1.paid_at.isoformat() == "2026-11-20T02:00:00+00:00"  # brand-local 10:00 in Shanghai
    # and importing the same file again changes nothing
    again = run_order_import(database.transaction, actor=Actor.system(ws.id), path=path, clock=clock)
    assert (again.created, again.unchanged) == (0, 2)
    assert _count(db, ws) == 2


def test_taobao_export_in_gbk(db: Session, database: Database, clock: FrozenClock, tmp_path: Path) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    path = _file(tmp_path, "taobao.csv", TAOBAO, encoding="gbk")
    report = run_order_import(database.transaction, actor=Actor.system(ws.id), path=path, clock=clock)
    assert (report.layout, report.created, report.skipped_unpaid, report.rejected) == ("taobao", 1, 1, 0)
    order = db.scalar(select(Order).where(Order.workspace_id == ws.id))
    assert order is not None and (order.platform, order.external_id, order.total_fen) == ("taobao", "2981", 129900)


def test_youzan_xlsx_splits_the_order_amount_by_quantity(
    db: Session, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    ws = make_workspace(db, clock=clock)
    db.commit()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["订单号", "买家手机号", "订单实付金额", "运费", "付款时间", "商品名称", "商品编码", "商品数量"])
    sheet.append(["E1", "13800138000", 100.01, 0, datetime(2026, 11, 20, 21, 30), "杯子", "CUP", 2])
    sheet.append(["E1", "13800138000", 100.01, 0, datetime(2026, 11, 20, 21, 30), "碟子", "DISH", 1])
    path = tmp_path / "youzan.xlsx"
    book.save(path)
    report = run_order_import(database.transaction, actor=Actor.system(ws.id), path=path, clock=clock)
    assert (report.layout, report.created) == ("youzan", 1)
    amounts = db.execute(select(OrderItem.sku, OrderItem.amount_fen).where(OrderItem.workspace_id == ws.id))
    assert sorted(amounts) == [("CUP", 6667), ("DISH", 3334)]  # 10001 fen split 2:1, remainder on the last line
    paid = db.scalar(select(Order.paid_at).where(Order.workspace_id == ws.id))
    assert paid is not None and paid.isoformat() == "2026-11-20T13:30:00+00:00"


def test_yuan_to_fen_is_exact() -> None:
    assert [yuan_to_fen(t, "x") for t in ("0.1", "0.2", "1,299.99", "¥12.5", "3")] == [10, 20, 129999, 1250, 300]
    for bad in ("-1", "1.001", "abc", "NaN"):
        with pytest.raises(CellError):
            yuan_to_fen(bad, "金额")


def test_unknown_header_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(InvalidInput) as caught:
        detect_layout(["姓名", "城市"])
    assert caught.value.details["missing"] == ["external_id", "paid_at", "sku", "amount"]


def test_import_over_the_api(client: TestClient, db: Session, clock: FrozenClock) -> None:
    # given a token
    ws = make_workspace(db, clock=clock)
    headers = bearer(make_token(db, clock=clock, workspace=ws))
    db.commit()
    # when a file is uploaded and its job runs
    response = client.post(
        "/api/v1/orders/imports", headers=headers, files={"file": ("o.csv", TEMPLATE.encode(), "text/csv")}
    )
    assert (response.status_code, response.json()["status"]) == (202, "queued")
    run_job(response.json()["id"])
    status = client.get(f"/api/v1/orders/imports/{response.json()['id']}", headers=headers).json()
    # then the report is the job's result
    assert status["status"] == "succeeded"
    assert (status["result"]["created"], status["result"]["rejected"], status["result"]["filename"]) == (2, 2, "o.csv")
    assert _count(db, ws) == 2
    # a file of another shape is a 422 at the door, and a reader may not import
    bad = client.post(
        "/api/v1/orders/imports", headers=headers, files={"file": ("o.csv", "姓名\n张三\n".encode(), "text/csv")}
    )
    assert (bad.status_code, bad.json()["error"]["details"]["field"]) == (422, "file")
    reader = bearer(make_token(db, clock=clock, workspace=ws, scopes=["commerce:read"]))
    db.commit()
    denied = client.post(
        "/api/v1/orders/imports", headers=reader, files={"file": ("o.csv", TEMPLATE.encode(), "text/csv")}
    )
    assert denied.status_code == 403
    assert _count(db, ws) == 2
