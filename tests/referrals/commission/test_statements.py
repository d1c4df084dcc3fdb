"""Statements per brand-local period, settlement (frozen afterwards) and the settlement export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, CommissionEntry, StatementStatus
from siyu.referrals.commission import ledger, statements
from siyu.referrals.commission.errors import StatementSettled
from siyu.referrals.commission.schemas import AdjustIn, PeriodIn, SettleIn
from tests.factories import make_order
from tests.referrals.commission.factories import Distribution, make_distribution, refer

NOVEMBER = PeriodIn(period_start=date(2026, 11, 1), period_end=date(2026, 11, 30))
DECEMBER = PeriodIn(period_start=date(2026, 12, 1), period_end=date(2026, 12, 31))


def _earn(db: Session, setup: Distribution, clock: FrozenClock, paid_at: datetime, total_fen: int) -> None:
    referee = refer(db, setup, clock=clock, attributed_at=datetime(2026, 11, 1, tzinfo=UTC))
    ledger.earn_for_orders(db, [make_order(db, customer=referee, paid_at=paid_at, total_fen=total_fen)], clock)


def test_a_statement_gathers_the_periods_unsettled_entries_by_brand_local_date(db: Session, clock: FrozenClock) -> None:
    # given entries on 30 Nov 23:59 and 1 Dec 00:30 Shanghai time
    setup = make_distribution(db, clock=clock)
    _earn(db, setup, clock, datetime(2026, 11, 30, 15, 59, tzinfo=UTC), 10_000)
    _earn(db, setup, clock, datetime(2026, 11, 30, 16, 30, tzinfo=UTC), 20_000)
    # when November's statements are generated
    (statement,) = statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock)
    # then only the November entry is on it, and 20 yuan stays unsettled beyond it
    assert (statement.koc_customer_id, statement.total_fen, statement.entries_count) == (setup.koc.id, 1_000, 1)
    assert statement.status == StatementStatus.OPEN
    assert [e.amount_fen for e in statements.statement_entries(db, statement=statement)] == [1_000]
    assert ledger.unsettled(db, workspace_id=setup.workspace.id, koc_customer_id=setup.koc.id) == 3_000


def test_regenerating_adds_late_entries_to_the_open_statement(db: Session, clock: FrozenClock) -> None:
    # given November's open statement with one entry
    setup = make_distribution(db, clock=clock)
    _earn(db, setup, clock, datetime(2026, 11, 10, 2, 0, tzinfo=UTC), 10_000)
    (first,) = statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock)
    # when a late November order arrives and November is generated again
    _earn(db, setup, clock, datetime(2026, 11, 11, 2, 0, tzinfo=UTC), 5_000)
    (again,) = statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock)
    # then the same statement now holds both
    assert again.id == first.id
    assert (again.total_fen, again.entries_count) == (1_500, 2)


def test_settling_freezes_the_statement(db: Session, clock: FrozenClock) -> None:
    # given November's statement of 10 yuan
    setup = make_distribution(db, clock=clock)
    _earn(db, setup, clock, datetime(2026, 11, 10, 2, 0, tzinfo=UTC), 10_000)
    (statement,) = statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock)
    # when it is settled with a payment reference
    statements.settle(
        db, actor=setup.actor, statement_id=statement.id, data=SettleIn(payment_ref="PAY-001"), clock=clock
    )
    # then it is settled and audited; a second settlement is refused; late entries wait for December
    assert (statement.status, statement.payment_ref, statement.settled_at) == ("settled", "PAY-001", clock.now())
    with pytest.raises(StatementSettled):
        statements.settle(db, actor=setup.actor, statement_id=statement.id, data=SettleIn(payment_ref="X"), clock=clock)
    ledger.adjust(
        db, actor=setup.actor, data=AdjustIn(koc_customer_id=setup.koc.id, amount_fen=300, reason="补发"), clock=clock
    )
    assert statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock) == []
    (december,) = statements.generate(db, actor=setup.actor, period=DECEMBER, clock=clock)
    assert (december.total_fen, december.entries_count) == (300, 1)
    assert statement.total_fen == 1_000
    assert ledger.unsettled(db, workspace_id=setup.workspace.id, koc_customer_id=setup.koc.id) == 300
    audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "commission.statement.settle")).one()
    assert audit.after == {"payment_ref": "PAY-001", "total_fen": 1_000, "entries": 1}


def test_settling_needs_growth_review(db: Session, clock: FrozenClock) -> None:
    # given an open statement and an operator with growth:read and growth:write only
    setup = make_distribution(db, clock=clock)
    _earn(db, setup, clock, datetime(2026, 11, 10, 2, 0, tzinfo=UTC), 10_000)
    (statement,) = statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock)
    writer = Actor(
        kind="user", workspace_id=setup.workspace.id, label="writer", scopes=frozenset({"growth:read", "growth:write"})
    )
    # when they try to settle, then they are refused and nothing changed
    with pytest.raises(PermissionDenied):
        statements.settle(db, actor=writer, statement_id=statement.id, data=SettleIn(payment_ref="P"), clock=clock)
    assert (statement.status, statement.payment_ref) == ("open", None)


def test_export_lists_the_periods_statements_in_csv_and_xlsx(db: Session, clock: FrozenClock) -> None:
    # given a settled statement of 19.99 yuan for a KOC named "=HYPERLINK" with a phone
    setup = make_distribution(db, clock=clock, koc_phone="13800138000")
    setup.koc.name = "=HYPERLINK(1)"
    _earn(db, setup, clock, datetime(2026, 11, 10, 2, 0, tzinfo=UTC), 19_999)
    (statement,) = statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock)
    statements.settle(db, actor=setup.actor, statement_id=statement.id, data=SettleIn(payment_ref="PAY-9"), clock=clock)
    # when November is exported
    rows = statements.export_rows(db, workspace_id=setup.workspace.id, period=NOVEMBER)
    csv_bytes = statements.export_csv(rows)
    xlsx_bytes = statements.export_xlsx(rows)
    # then both hold the masked phone, the entries and the total in yuan; the name cannot run as a formula
    expected = [
        str(statement.id),
        "'=HYPERLINK(1)",
        "138****8000",
        "2026-11-01",
        "2026-11-30",
        "1",
        "19.99",
        "settled",
        "PAY-9",
    ]
    parsed = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8-sig"))))
    assert parsed == [list(statements.HEADER), expected]
    sheet = load_workbook(io.BytesIO(xlsx_bytes)).active
    assert sheet is not None
    assert [[str(c) for c in row] for row in sheet.iter_rows(values_only=True)] == [list(statements.HEADER), expected]


def test_generating_with_nothing_to_gather_writes_nothing(db: Session, clock: FrozenClock) -> None:
    # given a KOC without entries
    setup = make_distribution(db, clock=clock)
    # when November is generated, then no statement and no audit row
    assert statements.generate(db, actor=setup.actor, period=NOVEMBER, clock=clock) == []
    assert db.scalars(select(CommissionEntry)).all() == []
