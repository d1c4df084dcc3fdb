"""The coupon template form: a change refused because coupons were issued shows by its field."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.commerce.coupons.issuing import issue_coupon
from siyu.kit.clock import FrozenClock
from siyu.models import CouponKind, CouponTemplate, Role, User, Workspace
from tests.commerce.coupons.factories import buyer, make_template
from tests.web import conftest as web
from tests.web.conftest import login

app = web.app
client = web.client
workspace = web.workspace
user_with_role = web.user_with_role

FORM = {
    "name": "满300减50",
    "kind": "amount_off",
    "amount": "50",
    "threshold_fen": "300",
    "valid_days": "7",
    "per_customer_limit": "1",
    "offer": "none",
}


def _issued(db: Session, workspace: Workspace, clock: FrozenClock, **values: object) -> CouponTemplate:
    template = make_template(db, workspace=workspace, clock=clock, name="满300减50", threshold_fen=30_000, **values)
    customer = buyer(db, workspace=workspace, clock=clock)
    issue_coupon(
        db,
        workspace_id=workspace.id,
        template_id=template.id,
        customer_id=customer.id,
        source="api",
        idempotency_key="k1",
        clock=clock,
    )
    db.commit()
    return template


def test_a_refused_value_change_shows_next_to_the_field(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given a ¥50-off template above ¥300 with one coupon issued, and an operator
    template = _issued(db, workspace, clock, value=5_000)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    url = f"/coupons/templates/{template.id}/edit"
    # when they make it ¥5 off, or change the threshold
    amount = client.post(url, data=FORM | {"amount": "5", "csrf_token": csrf})
    threshold = client.post(url, data=FORM | {"threshold_fen": "100", "csrf_token": csrf})
    # then each form comes back with the refusal by that field, and nothing changed
    assert amount.status_code == 422 and 'data-error="amount"' in amount.text
    assert "value cannot change: 1 coupons of this template were issued" in amount.text
    assert threshold.status_code == 422 and 'data-error="threshold_fen"' in threshold.text
    db.expire_all()
    assert (template.value, template.threshold_fen) == (5_000, 30_000)
    # when only the name and stock change, then it is saved
    saved = client.post(url, data=FORM | {"name": "满300减50（加印）", "total_stock": "500", "csrf_token": csrf})
    assert saved.status_code == 303
    db.expire_all()
    assert (template.name, template.total_stock, template.value) == ("满300减50（加印）", 500, 5_000)


def test_a_refused_percent_change_shows_by_the_percent_field(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given a 15%-off template with one coupon issued
    template = _issued(db, workspace, clock, kind=CouponKind.PERCENT_OFF, value=15)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    form = FORM | {"kind": "percent_off", "amount": "", "percent": "30", "csrf_token": csrf}
    # when it is made 30% off, or an amount-off coupon
    percent = client.post(f"/coupons/templates/{template.id}/edit", data=form)
    kind = client.post(f"/coupons/templates/{template.id}/edit", data=form | {"kind": "amount_off", "amount": "5"})
    # then the refusal shows by the percent field, then by the kind
    assert percent.status_code == 422 and 'data-error="percent"' in percent.text
    assert kind.status_code == 422 and 'data-error="kind"' in kind.text
    db.expire_all()
    assert (template.kind, template.value) == ("percent_off", 15)
