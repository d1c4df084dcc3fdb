"""Console `/growth/commission`: rules, a KOC's ledger and adjustments, statements, settlement, export."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import CommissionEntry, CommissionRule, CommissionStatement, Role, User, Workspace
from siyu.referrals.commission import ledger
from tests.factories import make_order
from tests.referrals.commission.factories import make_distribution, make_koc, make_rule, refer
from tests.web.conftest import login


def test_rules_are_created_and_refused_with_the_field_named(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given an operator signed in
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when a rule with a 60% rate is saved, then a valid one
    bad = client.post(
        "/growth/commission/rules", data={"csrf_token": csrf, "name": "太高", "rate_bp": "6000", "days": "30"}
    )
    good = client.post(
        "/growth/commission/rules",
        data={"csrf_token": csrf, "name": "达人", "rate_bp": "1500", "days": "14", "cap_per_month_fen": "500.50",
              "is_active": "on"},
    )  # fmt: skip
    # then the first shows the form again naming rate_bp; the second is saved with the cap in fen and listed
    assert bad.status_code == 422 and 'data-error="rate_bp"' in bad.text
    assert good.status_code == 303
    rule = db.scalars(select(CommissionRule).where(CommissionRule.workspace_id == workspace.id)).one()
    assert (rule.name, rule.rate_bp, rule.days, rule.cap_per_month_fen, rule.cap_per_referee_fen) == (
        "达人",
        1500,
        14,
        50_050,
        None,
    )
    page = client.get("/growth/commission")
    assert page.status_code == 200 and 'data-rule="达人"' in page.text and "15%" in page.text and "¥500.50" in page.text


def test_an_operator_adjusts_generates_settles_and_exports(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given a KOC named with HTML who earned 19.90 yuan in November
    setup = make_distribution(db, clock=clock, workspace=workspace, koc_name="<b>小红</b>", koc_phone="13900139000")
    koc = setup.koc
    referee = refer(db, setup, clock=clock, attributed_at=datetime(2026, 11, 1, tzinfo=UTC))
    ledger.earn_for_orders(
        db, [make_order(db, customer=referee, paid_at=datetime(2026, 11, 5, tzinfo=UTC), total_fen=19_900)], clock
    )
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when the operator adds 1 yuan (submitted twice), a bad amount, generates November and settles it
    page = client.get(f"/growth/commission/kocs/{koc.id}")
    assert page.status_code == 200 and "&lt;b&gt;小红&lt;/b&gt;" in page.text and "<b>小红</b>" not in page.text
    form = {"csrf_token": csrf, "amount": "1", "reason": "活动奖励", "key": "k-1"}
    assert client.post(f"/growth/commission/kocs/{koc.id}/adjust", data=form).status_code == 303
    assert client.post(f"/growth/commission/kocs/{koc.id}/adjust", data=form).status_code == 303
    bad = client.post(f"/growth/commission/kocs/{koc.id}/adjust", data={**form, "amount": "1.234", "key": "k-2"})
    assert bad.status_code == 422 and 'data-error="amount_fen"' in bad.text
    period = {"period_start": "2026-11-01", "period_end": "2026-11-30"}
    generated = client.post("/growth/commission/statements", data={"csrf_token": csrf, **period})
    assert generated.status_code == 303
    statement = db.scalars(select(CommissionStatement).where(CommissionStatement.workspace_id == workspace.id)).one()
    listed = client.get(generated.headers["location"])
    assert f'data-statement="{statement.id}"' in listed.text and "¥20.90" in listed.text
    settled = client.post(
        f"/growth/commission/statements/{statement.id}/settle", data={"csrf_token": csrf, "payment_ref": "WX-8"}
    )
    export = client.get("/growth/commission/export?period_start=2026-11-01&period_end=2026-11-30&format=csv")
    # then one adjustment was written, the statement is settled and exported with the masked phone
    assert settled.status_code == 303
    db.refresh(statement)
    assert (statement.status, statement.payment_ref, statement.total_fen) == ("settled", "WX-8", 2_090)
    adjustments = db.scalars(
        select(CommissionEntry).where(CommissionEntry.kind == "adjust", CommissionEntry.workspace_id == workspace.id)
    ).all()
    assert [(a.amount_fen, a.reason) for a in adjustments] == [(100, "活动奖励")]
    assert export.status_code == 200
    assert (
        export.content.decode("utf-8-sig").splitlines()[1]
        == f"{statement.id},<b>小红</b>,139****9000,2026-11-01,2026-11-30,2,20.90,settled,WX-8"
    )
    assert 'data-status="settled"' in client.get(f"/growth/commission/statements/{statement.id}").text


def test_an_analyst_reads_but_cannot_settle_or_adjust(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given a KOC and an analyst signed in
    koc, _profile = make_koc(db, workspace=workspace, clock=clock, rule=make_rule(db, workspace=workspace, clock=clock))
    db.commit()
    csrf = login(client, user_with_role(Role.ANALYST).email)
    # when they open the page and try to adjust
    page = client.get("/growth/commission")
    refused = client.post(
        f"/growth/commission/kocs/{koc.id}/adjust", data={"csrf_token": csrf, "amount": "5", "reason": "x"}
    )
    # then they read the page (no write buttons) and the adjustment is refused, nothing written
    assert page.status_code == 200 and 'id="new-rule"' not in page.text and 'id="generate"' not in page.text
    assert refused.status_code == 403
    assert ledger.balance(db, workspace_id=workspace.id, koc_customer_id=koc.id) == 0


def test_the_period_filter_carries_no_csrf_token_and_generating_posts_one(
    client: TestClient, user_with_role: Callable[..., User]
) -> None:
    # given an operator signed in
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when the page for November is opened
    page = client.get("/growth/commission?period_start=2026-11-01&period_end=2026-11-30").text
    # then the GET filter form has no token (it would land in the URL); the POST form has it and the dates
    get_form = re.search(r'<form[^>]*id="period-form".*?</form>', page, flags=re.S)
    post_form = re.search(r'<form[^>]*id="generate-form".*?</form>', page, flags=re.S)
    assert get_form is not None and post_form is not None
    assert 'method="get"' in get_form.group(0) and "csrf_token" not in get_form.group(0)
    posted = post_form.group(0)
    assert 'method="post"' in posted and f'name="csrf_token" value="{csrf}"' in posted
    assert re.findall(r'name="(period_\w+)" value="([\d-]+)"', posted) == [
        ("period_start", "2026-11-01"),
        ("period_end", "2026-11-30"),
    ]
    assert 'id="generate"' in posted
