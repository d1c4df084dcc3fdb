"""The commerce console: products (and their CSV), orders (search, detail, refund), parked orders,
the order import, coupon templates and issued coupons."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, select
from sqlalchemy.orm import Session

from siyu.jobs.service import run_job
from siyu.kit.clock import FrozenClock
from siyu.models import (
    AuditEntry,
    CommerceSettings,
    Coupon,
    CouponState,
    CouponTemplate,
    CouponTemplateStatus,
    Job,
    Order,
    ParkedOrder,
    Product,
    Refund,
    Role,
    User,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_order, make_staff
from tests.web.conftest import login
from tests.web.loyalty_factories import Loyal
from tests.web.loyalty_factories import count_rows as _count
from tests.web.loyalty_factories import seed_loyal as _seed

Users = Callable[..., User]


def _pages(world: Loyal) -> list[str]:
    return [
        "/products",
        "/products?q=面霜",
        "/products/new",
        f"/products/{world.product.id}/edit",
        "/products/upload",
        "/orders",
        "/orders?q=TB1001&platform=taobao&status=paid&paid_from=2026-11-01&paid_to=2026-11-30",
        f"/orders/{world.order.id}",
        "/orders/parked",
        "/orders/imports",
        "/coupons",
        "/coupons/templates/new",
        f"/coupons/templates/{world.coupon.template_id}/edit",
        "/coupons/issued",
        f"/coupons/issued?customer={world.customer.id}&state=issued",
    ]


def test_every_commerce_page_renders_in_chinese_and_english(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a product, an order with one line and an issued coupon
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.ADMIN).email)
    # when an admin opens each page, then each renders
    for path in _pages(world):
        assert client.get(path).status_code == 200, path
    # and the values are exact
    assert "¥199.00" in client.get("/products").text
    orders = client.get("/orders?q=TB1001").text
    assert 'data-order="TB1001"' in orders and "王芳" in orders
    assert world.coupon.code in client.get("/coupons/issued").text
    detail = client.get(f"/orders/{world.order.id}").text
    assert 'data-sku="SKU-1"' in detail and 'id="order-total">¥199.00<' in detail
    # and in English too
    client.post("/locale", data={"locale": "en", "next": "/", "csrf_token": csrf})
    for path in _pages(world):
        assert client.get(path).status_code == 200, path
    assert "Paid" in client.get("/orders").text


def test_orders_are_found_by_id_phone_and_filters(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given 王芳's order TB1001 on Taobao 3 days ago and 李雷's JD order 40 days ago
    world = _seed(db, workspace, clock)
    other = make_customer(db, actor=actor_for(workspace), clock=clock, name="李雷", phone="13900139000").customer
    make_order(db, customer=other, paid_at=clock.now() - timedelta(days=40), platform="jd", external_id="JD77")
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)

    def shown(query: str) -> set[str]:
        return set(re.findall(r'data-order="([^"]+)"', client.get(f"/orders?{query}").text))

    # then each search and filter shows exactly the matching orders
    assert shown("") == {"TB1001", "JD77"}
    assert shown("q=JD77") == {"JD77"}
    assert shown("q=139 0013 9000") == {"JD77"}
    assert shown("q=+8613800138000") == {"TB1001"}
    assert shown("platform=jd") == {"JD77"}
    assert shown(f"customer={world.customer.id}") == {"TB1001"}
    assert shown("paid_from=2026-11-15") == {"TB1001"}
    assert shown("paid_to=2026-10-20") == {"JD77"}
    assert shown("status=refunded") == set()
    bad = client.get("/orders?paid_from=yesterday")
    assert bad.status_code == 200 and 'data-error="filters"' in bad.text


def test_the_order_list_runs_the_same_queries_for_3_or_30_orders(
    client: TestClient,
    db: Session,
    connection: Connection,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Users,
) -> None:
    # given an operator and customers with orders
    actor = actor_for(workspace)
    login(client, user_with_role(Role.OPERATOR).email)

    def queries_for(orders: int) -> int:
        for n in range(orders - _count(db, Order)):
            buyer = make_customer(db, actor=actor, clock=clock, name=f"买家{n}").customer
            make_order(db, customer=buyer, paid_at=clock.now() - timedelta(hours=n + 1))
        db.commit()
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(connection, "before_cursor_execute", count)
        try:
            page = client.get("/orders")
        finally:
            event.remove(connection, "before_cursor_execute", count)
        assert page.text.count("data-order=") == orders
        return len(statements)

    # when the list shows 3, then 30 orders, then it runs the same number of statements
    assert queries_for(3) == queries_for(30)


def test_a_partial_then_full_refund_from_the_order_page(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given order TB1001 of 199.00
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    url = f"/orders/{world.order.id}/refunds"
    # when 50.00 is refunded, and the same refund id is submitted again (a double click)
    form = {"external_id": "R1", "amount": "50.00", "reason": "少发一件", "csrf_token": csrf}
    assert client.post(url, data=form).status_code == 303
    assert client.post(url, data=form).status_code == 303
    # then one refund of 5,000 fen is recorded and the order is partially refunded
    db.expire_all()
    order = db.get(Order, world.order.id)
    assert (order.refunded_fen, str(order.status)) == (5_000, "partially_refunded")  # type: ignore[union-attr]
    assert _count(db, Refund) == 1
    # when more than what is left is refunded, then it is refused and nothing is written
    too_much = client.post(url, data={"external_id": "R2", "amount": "150.00", "csrf_token": csrf})
    assert too_much.status_code == 422 and 'data-error="refund"' in too_much.text
    assert _count(db, Refund) == 1
    # when the rest is refunded (amount left empty), then the order is refunded
    assert client.post(url, data={"external_id": "R3", "amount": "", "csrf_token": csrf}).status_code == 303
    db.expire_all()
    order = db.get(Order, world.order.id)
    assert (order.refunded_fen, str(order.status)) == (19_900, "refunded")  # type: ignore[union-attr]
    page = client.get(f"/orders/{world.order.id}").text
    assert 'data-refund="R1"' in page and 'data-refund="R3"' in page and 'id="refund-form"' not in page


def test_products_are_created_edited_and_uploaded(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an operator and product SKU-1
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when they create a product priced 89.90 yuan, then it is stored in fen
    form = {"sku": "SKU-2", "name": "精华", "category": "护肤", "price_fen": "89.90", "is_active": "on"}
    assert client.post("/products", data=form | {"csrf_token": csrf}).status_code == 303
    created = db.scalars(select(Product).where(Product.sku == "SKU-2")).one()
    assert (created.price_fen, created.is_active) == (8_990, True)
    # when a price has three decimals, then the field is named and nothing is written
    bad = client.post("/products", data=form | {"sku": "SKU-3", "price_fen": "1.234", "csrf_token": csrf})
    assert bad.status_code == 422 and 'data-error="price_fen"' in bad.text
    assert _count(db, Product) == 2
    # when they edit SKU-1 to 209.00 and stop selling it
    edit = {"name": "玫瑰面霜", "price_fen": "209", "repurchase_cycle_days": "45", "csrf_token": csrf}
    assert client.post(f"/products/{world.product.id}/edit", data=edit).status_code == 303
    db.expire_all()
    product = db.get(Product, world.product.id)
    assert (product.price_fen, product.is_active, product.repurchase_cycle_days) == (20_900, False, 45)  # type: ignore[union-attr]
    # when a CSV updates SKU-2, adds SKU-4 and has a bad row, then the report counts each exactly
    csv = "sku,name,price\nSKU-2,精华,99.00\nSKU-4,面膜,12.5\nSKU-5,,abc\n".encode()
    report = client.post(
        "/products/upload", data={"csrf_token": csrf}, files={"file": ("products.csv", csv, "text/csv")}
    ).text
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', report))
    assert counts == {"rows": "3", "created": "1", "updated": "1", "unchanged": "0", "rejected": "1"}
    assert "<td>4</td>" in report
    assert db.scalars(select(Product.price_fen).where(Product.sku == "SKU-4")).one() == 1_250


def test_an_order_file_is_queued_and_its_report_shown(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an operator
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when they upload a file whose header matches no known layout, then it is refused at once
    unknown = client.post(
        "/orders/imports", data={"csrf_token": csrf}, files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")}
    )
    assert unknown.status_code == 422 and 'data-error="file"' in unknown.text
    assert _count(db, Job) == 0
    # when they upload a Youzan export (one good order, one with a negative amount),
    # then a job is queued and its page shows it
    youzan = (
        "订单号,买家手机号,订单实付金额,付款时间,商品名称,商品编码\n"
        "E1,13800138000,19.90,2026-11-20 10:00:00,面霜,SKU-1\n"
        "E2,13900139000,-5,2026-11-20 11:00:00,面霜,SKU-1\n"
    )
    response = client.post(
        "/orders/imports", data={"csrf_token": csrf}, files={"file": ("youzan.csv", youzan.encode(), "text/csv")}
    )
    assert response.status_code == 303
    job_id = int(response.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/orders/imports/{job_id}")
    assert page.status_code == 200 and 'id="import-report"' in page.text
    # when the job runs, then the report counts the order and names the refused row and field
    run_job(job_id, clock=clock)
    report = client.get(f"/orders/imports/{job_id}").text
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', report))
    assert (counts["rows"], counts["orders"], counts["created"], counts["rejected"]) == ("2", "2", "1", "1")
    assert 'data-status="succeeded"' in report and "<td>3</td>" in report
    assert db.scalars(select(Order.total_fen).where(Order.external_id == "E1")).one() == 1_990


def test_coupon_templates_are_created_archived_and_coupons_issued_and_voided(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an operator and 王芳
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when they create a 15%-off template (at most 30.00, threshold 100.00, 7 days, stock 2)
    form = {
        "name": "八五折",
        "kind": "percent_off",
        "percent": "15",
        "max_discount_fen": "30",
        "threshold_fen": "100",
        "valid_days": "7",
        "per_customer_limit": "1",
        "total_stock": "2",
        "offer": "none",
        "channels": "taobao, jd",
    }
    assert client.post("/coupons/templates", data=form | {"csrf_token": csrf}).status_code == 303
    template = db.scalars(select(CouponTemplate).where(CouponTemplate.name == "八五折")).one()
    assert (template.value, template.max_discount_fen, template.threshold_fen, template.channels) == (
        15,
        3_000,
        10_000,
        ["taobao", "jd"],
    )
    # when the percent is missing, then the field is named
    bad = client.post("/coupons/templates", data=form | {"name": "坏", "percent": "", "csrf_token": csrf})
    assert bad.status_code == 422 and 'data-error="percent"' in bad.text
    # when they issue it to 王芳 twice from the same form, then one coupon is issued
    page = client.get("/coupons/issued").text
    key = re.search(r'name="key" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    issue = {"template_id": str(template.id), "customer_id": str(world.customer.id), "key": key, "csrf_token": csrf}
    assert client.post("/coupons/issue", data=issue).status_code == 303
    assert client.post("/coupons/issue", data=issue).status_code == 303
    issued = db.scalars(select(Coupon).where(Coupon.template_id == template.id)).all()
    assert len(issued) == 1
    # when they void it without a reason, then it is refused; with a reason, then it is void
    client.post(f"/coupons/{issued[0].id}/void", data={"reason": "", "csrf_token": csrf})
    db.expire_all()
    assert db.get(Coupon, issued[0].id).state == CouponState.ISSUED  # type: ignore[union-attr]
    client.post(f"/coupons/{issued[0].id}/void", data={"reason": "发错人", "csrf_token": csrf})
    db.expire_all()
    voided = db.get(Coupon, issued[0].id)
    assert (voided.state, voided.void_reason) == (CouponState.VOID, "发错人")  # type: ignore[union-attr]
    # when the template is archived, then it says so
    client.post(f"/coupons/templates/{template.id}/archive", data={"csrf_token": csrf})
    db.expire_all()
    assert db.get(CouponTemplate, template.id).status == CouponTemplateStatus.ARCHIVED  # type: ignore[union-attr]


def test_staff_see_only_their_customers_and_cannot_write(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a staff member who owns no customers (commerce:read only)
    world = _seed(db, workspace, clock)
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    audits = _count(db, AuditEntry)
    # when they read, then others' orders and coupons are hidden and no write button shows
    assert 'data-order="TB1001"' not in client.get("/orders").text
    assert client.get(f"/orders/{world.order.id}").status_code == 404
    assert world.coupon.code not in client.get("/coupons/issued").text
    assert 'id="new-product"' not in client.get("/products").text
    assert 'id="issue-form"' not in client.get("/coupons/issued").text
    for path in ("/products/new", "/products/upload", "/orders/imports", "/coupons/templates/new"):
        assert client.get(path).status_code == 403, path
    # when they post anything, then it is refused and nothing changed
    posts = {
        "/products": {"sku": "X", "name": "X", "price_fen": "1"},
        f"/products/{world.product.id}/edit": {"name": "X", "price_fen": "1"},
        f"/orders/{world.order.id}/refunds": {"external_id": "R", "amount": "1"},
        "/coupons/templates": {"name": "X", "kind": "gift"},
        f"/coupons/templates/{world.coupon.template_id}/archive": {},
        "/coupons/issue": {"template_id": str(world.coupon.template_id), "customer_id": "1", "key": "k"},
        f"/coupons/{world.coupon.id}/void": {"reason": "x"},
    }
    for path, data in posts.items():
        assert client.post(path, data=data | {"csrf_token": csrf}).status_code == 403, path
    assert (_count(db, Product), _count(db, Refund), _count(db, CouponTemplate), _count(db, Coupon)) == (1, 0, 1, 1)
    db.expire_all()
    assert db.get(Coupon, world.coupon.id).state == CouponState.ISSUED  # type: ignore[union-attr]
    assert _count(db, AuditEntry) == audits


def test_commerce_settings_and_the_webhook_secret_shown_once(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an admin (commerce:settings)
    csrf = login(client, user_with_role(Role.ADMIN).email)
    # when they choose to park unknown buyers' orders and keep coupons on refunds
    response = client.post("/commerce/settings", data={"unknown_customer": "park", "csrf_token": csrf})
    # then the settings hold exactly that
    assert response.status_code == 303
    saved = db.scalars(select(CommerceSettings)).one()
    assert (str(saved.unknown_customer), saved.restore_coupon_on_refund) == ("park", False)
    # when they rotate the webhook secret, then it shows once and never again
    rotated = client.post("/commerce/settings/webhook-secret", data={"csrf_token": csrf}).text
    secret = re.search(r'id="webhook-secret">([^<]+)<', rotated).group(1)  # type: ignore[union-attr]
    assert secret.startswith("whsec_")
    again = client.get("/commerce/settings").text
    assert secret not in again and 'id="has-secret"' in again
    # and a bad policy is refused and changes nothing
    bad = client.post("/commerce/settings", data={"unknown_customer": "guess", "csrf_token": csrf})
    assert bad.status_code == 422
    db.expire_all()
    assert str(db.scalars(select(CommerceSettings)).one().unknown_customer) == "park"


def test_operators_cannot_change_commerce_settings(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an operator (no commerce:settings)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when they open or post the settings, then it is refused and nothing is written
    assert 'id="commerce-settings"' not in client.get("/orders").text
    assert client.get("/commerce/settings").status_code == 403
    assert client.post("/commerce/settings", data={"unknown_customer": "park", "csrf_token": csrf}).status_code == 403
    assert client.post("/commerce/settings/webhook-secret", data={"csrf_token": csrf}).status_code == 403
    assert _count(db, CommerceSettings) == 0


def test_parked_orders_are_listed_until_resolved(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given one order waiting for its buyer and one already ingested
    for external_id, resolved in (("TB-WAIT", None), ("TB-DONE", clock.now())):
        db.add(
            ParkedOrder(
                workspace_id=workspace.id,
                platform="taobao",
                external_id=external_id,
                payload={},
                identities="phone:+8613700137000",
                reason="no customer with these identities",
                created_at=clock.now(),
                resolved_at=resolved,
            )
        )
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)

    def shown(query: str) -> set[str]:
        return set(re.findall(r'data-order="([^"]+)"', client.get(f"/orders/parked{query}").text))

    # then the default list shows the waiting one, the filters the others
    assert shown("") == {"TB-WAIT"}
    assert shown("?resolved=yes") == {"TB-DONE"}
    assert shown("?resolved=all") == {"TB-WAIT", "TB-DONE"}


def test_a_coupon_template_is_edited(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given the template 满199减20 (2,000 fen off above 19,900)
    world = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    template_id = world.coupon.template_id
    page = client.get(f"/coupons/templates/{template_id}/edit").text
    assert 'id="f-amount" value="20.00"' in page and 'id="f-threshold_fen" value="199.00"' in page
    # when they try to make the issued coupon worth 30 yuan: refused next to the amount, nothing saved
    form = {
        "name": "满299减30",
        "kind": "amount_off",
        "amount": "30",
        "threshold_fen": "199",
        "valid_days": "30",
        "per_customer_limit": "1",
        "total_stock": "100",
        "offer": "none",
    }
    refused = client.post(f"/coupons/templates/{template_id}/edit", data=form | {"csrf_token": csrf})
    assert refused.status_code == 422 and 'data-error="amount"' in refused.text
    # when they rename it and set the stock to 100, keeping what it is worth
    kept = form | {"amount": "20"}
    assert client.post(f"/coupons/templates/{template_id}/edit", data=kept | {"csrf_token": csrf}).status_code == 303
    # then the template holds exactly that
    db.expire_all()
    template = db.get(CouponTemplate, template_id)
    assert (template.name, template.value, template.threshold_fen, template.total_stock) == (  # type: ignore[union-attr]
        "满299减30",
        2_000,
        19_900,
        100,
    )
