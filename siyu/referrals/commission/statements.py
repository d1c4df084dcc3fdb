"""Commission statements: gather a period's unsettled entries per KOC, settle (pay) them, export them.

A statement gathers every entry of its KOC not yet in a statement that occurred before the end of
`period_end` (brand-local), so late entries of earlier periods are paid in the next statement. An
open statement can be regenerated (new entries join it); a settled one is frozen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.export import csv_lines, safe_cell
from siyu.customers.masking import shown_phone
from siyu.kit.clock import Clock
from siyu.loyalty.program import brand_zone, local_midnight
from siyu.models import CommissionEntry, CommissionStatement, Customer, StatementStatus
from siyu.referrals.commission.errors import StatementNotFound, StatementSettled
from siyu.referrals.commission.ledger import lock_koc
from siyu.referrals.commission.schemas import PeriodIn, SettleIn
from siyu.segments.service.members import xlsx_bytes


def generate(session: Session, *, actor: Actor, period: PeriodIn, clock: Clock) -> list[CommissionStatement]:
    """One statement per KOC with unsettled entries up to `period_end` (growth:write). Idempotent:
    running it again adds only entries that arrived since to the period's open statements."""
    actor.require(Scope.GROWTH_WRITE)
    ws = actor.workspace_id
    end = local_midnight(period.period_end + timedelta(days=1), brand_zone(session, ws))
    loose = (
        CommissionEntry.workspace_id == ws,
        CommissionEntry.statement_id.is_(None),
        CommissionEntry.occurred_at < end,
    )
    koc_ids = sorted(set(session.scalars(select(CommissionEntry.koc_customer_id).where(*loose).distinct())))
    statements: list[CommissionStatement] = []
    for koc_id in koc_ids:
        lock_koc(session, workspace_id=ws, customer_id=koc_id)  # no entry moves while we gather
        statement = session.scalar(
            select(CommissionStatement).where(
                CommissionStatement.workspace_id == ws,
                CommissionStatement.koc_customer_id == koc_id,
                CommissionStatement.period_start == period.period_start,
                CommissionStatement.period_end == period.period_end,
            )
        )
        if statement is not None and statement.status == StatementStatus.SETTLED:
            continue  # frozen; the late entries wait for the next period
        if statement is None:
            statement = CommissionStatement(
                workspace_id=ws,
                koc_customer_id=koc_id,
                period_start=period.period_start,
                period_end=period.period_end,
                status=StatementStatus.OPEN,
                created_at=clock.now(),
            )
            session.add(statement)
            session.flush()
        session.execute(
            update(CommissionEntry)
            .where(*loose, CommissionEntry.koc_customer_id == koc_id)
            .values(statement_id=statement.id)
            .execution_options(synchronize_session=False)
        )
        _recount(session, statement)
        statements.append(statement)
    if statements:
        record(
            session, actor, action="commission.statements.generate", entity_type="commission_statement",
            entity_id=None, clock=clock,
            after={"period_start": period.period_start.isoformat(), "period_end": period.period_end.isoformat(),
                   "statements": [s.id for s in statements]},
        )  # fmt: skip
    return statements


def _recount(session: Session, statement: CommissionStatement) -> None:
    total, count = session.execute(
        select(func.coalesce(func.sum(CommissionEntry.amount_fen), 0), func.count()).where(
            CommissionEntry.statement_id == statement.id
        )
    ).one()
    statement.total_fen, statement.entries_count = int(total or 0), int(count)
    session.flush()


def get_statement(session: Session, *, workspace_id: int, statement_id: int) -> CommissionStatement:
    """One statement of the workspace, or `StatementNotFound`."""
    statement = session.get(CommissionStatement, statement_id)
    if statement is None or statement.workspace_id != workspace_id:
        raise StatementNotFound(f"commission statement {statement_id} not found")
    return statement


def settle(session: Session, *, actor: Actor, statement_id: int, data: SettleIn, clock: Clock) -> CommissionStatement:
    """Mark a statement paid with its payment reference (growth:review); it is frozen from then on."""
    actor.require(Scope.GROWTH_REVIEW)
    statement = get_statement(session, workspace_id=actor.workspace_id, statement_id=statement_id)
    lock_koc(session, workspace_id=actor.workspace_id, customer_id=statement.koc_customer_id)
    session.refresh(statement)
    if statement.status == StatementStatus.SETTLED:
        raise StatementSettled(f"statement {statement_id} is already settled", details={"field": "statement_id"})
    _recount(session, statement)
    statement.status = StatementStatus.SETTLED
    statement.settled_at = clock.now()
    statement.settled_by_user_id = actor.user_id
    statement.payment_ref = data.payment_ref
    session.flush()
    record(
        session, actor, action="commission.statement.settle", entity_type="commission_statement",
        entity_id=statement.id, clock=clock,
        after={"payment_ref": data.payment_ref, "total_fen": statement.total_fen, "entries": statement.entries_count},
    )  # fmt: skip
    return statement


def list_statements(
    session: Session,
    *,
    workspace_id: int,
    koc_customer_id: int | None = None,
    period: PeriodIn | None = None,
    status: StatementStatus | None = None,
) -> list[CommissionStatement]:
    """Statements, newest period first."""
    query = select(CommissionStatement).where(CommissionStatement.workspace_id == workspace_id)
    if koc_customer_id is not None:
        query = query.where(CommissionStatement.koc_customer_id == koc_customer_id)
    if period is not None:
        query = query.where(
            CommissionStatement.period_start == period.period_start, CommissionStatement.period_end == period.period_end
        )
    if status is not None:
        query = query.where(CommissionStatement.status == status)
    query = query.order_by(
        CommissionStatement.period_end.desc(), CommissionStatement.koc_customer_id, CommissionStatement.id
    )
    return list(session.scalars(query))


def statement_entries(session: Session, *, statement: CommissionStatement) -> list[CommissionEntry]:
    """The entries a statement gathered, oldest first."""
    return list(
        session.scalars(
            select(CommissionEntry)
            .where(CommissionEntry.statement_id == statement.id)
            .order_by(CommissionEntry.occurred_at, CommissionEntry.id)
        )
    )


# --- export ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRow:
    statement_id: int
    koc_name: str
    phone: str
    period_start: date
    period_end: date
    entries: int
    total_yuan: str
    status: str
    payment_ref: str


HEADER = ("statement_id", "koc_name", "phone", "period_start", "period_end", "entries", "total_yuan", "status",
          "payment_ref")  # fmt: skip


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def export_rows(session: Session, *, workspace_id: int, period: PeriodIn) -> list[ExportRow]:
    """The period's statements for payment: KOC name, masked phone, entries, total in yuan."""
    statements = list_statements(session, workspace_id=workspace_id, period=period)
    customers = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(Customer.id.in_([s.koc_customer_id for s in statements] or [0]))
        )
    }
    rows = []
    for s in sorted(statements, key=lambda s: s.id):
        customer = customers.get(s.koc_customer_id)
        rows.append(
            ExportRow(
                statement_id=s.id,
                koc_name=(customer.name if customer and customer.name else f"#{s.koc_customer_id}"),
                phone=(shown_phone(customer.phone, whole=False) if customer else None) or "",
                period_start=s.period_start,
                period_end=s.period_end,
                entries=s.entries_count,
                total_yuan=_yuan(s.total_fen),
                status=str(s.status),
                payment_ref=s.payment_ref or "",
            )
        )
    return rows


def _values(row: ExportRow) -> list[str | int]:
    return [
        row.statement_id,
        safe_cell(row.koc_name),
        row.phone,
        row.period_start.isoformat(),
        row.period_end.isoformat(),
        row.entries,
        row.total_yuan,
        row.status,
        safe_cell(row.payment_ref),
    ]


def _table(rows: Sequence[ExportRow]) -> Iterator[list[str]]:
    # ids and entry counts stay numbers (an .xlsx cell keeps its type; CSV writes them as text anyway)
    return cast("Iterator[list[str]]", iter([list(HEADER), *map(_values, rows)]))


def export_csv(rows: Sequence[ExportRow]) -> bytes:
    """UTF-8 CSV with a BOM (Excel opens Chinese names correctly)."""
    return "".join(csv_lines(_table(rows))).encode("utf-8")


def export_xlsx(rows: Sequence[ExportRow]) -> bytes:
    """An .xlsx workbook with one sheet of the same columns as the CSV."""
    return xlsx_bytes(_table(rows), title="settlement")
