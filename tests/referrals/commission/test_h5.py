"""Member H5 `/m/commission`: an approved KOC sees balance, entries and statements; others a 403 page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import KocStatus, Order
from siyu.referrals.commission import ledger, statements
from siyu.referrals.commission.schemas import AdjustIn, PeriodIn, SettleIn
from tests.factories import make_order
from tests.loyalty.h5.conftest import sign_in
from tests.referrals.commission.factories import make_distribution, refer


@pytest.fixture
def phone(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False, headers={"accept-language": "zh-CN,zh;q=0.9"}) as c:
        yield c


def test_an_approved_koc_sees_balance_entries_and_statements(
    db: Session, clock: FrozenClock, phone: TestClient
) -> None:
    # given a KOC with 19.90 earned and settled in October, 10 yuan earned in November, and an adjustment with HTML
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock, attributed_at=datetime(2026, 10, 1, tzinfo=UTC))
    october: Order = make_order(db, customer=referee, paid_at=datetime(2026, 10, 10, 2, tzinfo=UTC), total_fen=19_900)
    november = make_order(db, customer=referee, paid_at=datetime(2026, 10, 30, 2, tzinfo=UTC), total_fen=10_000)
    ledger.earn_for_orders(db, [october], clock)
    period = PeriodIn(period_start=datetime(2026, 10, 1).date(), period_end=datetime(2026, 10, 29).date())
    (statement,) = statements.generate(db, actor=setup.actor, period=period, clock=clock)
    statements.settle(db, actor=setup.actor, statement_id=statement.id, data=SettleIn(payment_ref="P1"), clock=clock)
    ledger.earn_for_orders(db, [november], clock)
    script = AdjustIn(koc_customer_id=setup.koc.id, amount_fen=-100, reason="<script>x</script>")
    ledger.adjust(db, actor=setup.actor, data=script, clock=clock)
    db.commit()
    # when the KOC opens the page
    sign_in(phone, setup.workspace.id, setup.koc.id, clock)
    page = phone.get("/m/commission")
    # then the balance is 28.90, 9 yuan unsettled, the entries newest first, the HTML escaped, and the statement
    assert page.status_code == 200, page.text
    text = page.text
    assert 'data-testid="commission-balance">¥28.90<' in text
    assert 'data-testid="commission-unsettled">¥9<' in text
    assert text.count('data-testid="commission-entry"') == 3
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<script>x</script>" not in text
    assert text.index("人工调整") < text.index(november.external_id) < text.index(october.external_id)
    assert ">-¥1<" in text and ">+¥10<" in text and ">+¥19.90<" in text
    assert text.count('data-testid="commission-statement"') == 1 and "已结算" in text


@pytest.mark.parametrize("status", [None, KocStatus.APPLIED, KocStatus.REVOKED], ids=str)
def test_members_who_are_not_approved_kocs_get_a_friendly_403(
    db: Session, clock: FrozenClock, phone: TestClient, status: KocStatus | None
) -> None:
    # given a plain member, an applicant and a revoked KOC
    setup = make_distribution(db, clock=clock)
    customer_id = setup.koc.id
    if status is None:
        customer_id = refer(db, setup, clock=clock).id
    else:
        setup.profile.status = status
    db.commit()
    # when they open the commission page
    sign_in(phone, setup.workspace.id, customer_id, clock)
    page = phone.get("/m/commission")
    # then a friendly page explains it, without any amounts
    assert page.status_code == 403
    assert "仅限认证 KOC" in page.text and "commission-balance" not in page.text
