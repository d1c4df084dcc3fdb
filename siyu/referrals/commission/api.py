"""JSON API of distribution commission: rules, ledger, statements, settlement export."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import validated
from siyu.models import CommissionEntry, CommissionRule, CommissionStatement, StatementStatus
from siyu.referrals.commission import ledger, rules, statements
from siyu.referrals.commission.schemas import AdjustIn, PeriodIn, RuleIn, SettleIn
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["commission"])
Reader = Annotated[Ctx, Depends(require(Scope.GROWTH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.GROWTH_WRITE))]
Reviewer = Annotated[Ctx, Depends(require(Scope.GROWTH_REVIEW))]


class RuleRead(BaseModel):
    id: int
    name: str
    rate_bp: int
    days: int
    cap_per_referee_fen: int | None
    cap_per_month_fen: int | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


def rule_read(rule: CommissionRule) -> RuleRead:
    return RuleRead.model_validate(rule, from_attributes=True)


class EntryRead(BaseModel):
    id: int
    koc_customer_id: int
    referee_customer_id: int | None
    order_id: int | None
    refund_id: int | None
    rule_id: int | None
    kind: str
    amount_fen: int
    reason: str
    idempotency_key: str
    statement_id: int | None
    occurred_at: datetime


def entry_read(entry: CommissionEntry) -> EntryRead:
    return EntryRead.model_validate(entry, from_attributes=True)


class StatementRead(BaseModel):
    id: int
    koc_customer_id: int
    period_start: date
    period_end: date
    total_fen: int
    entries_count: int
    status: str
    settled_at: datetime | None
    settled_by_user_id: int | None
    payment_ref: str | None
    created_at: datetime


def statement_read(statement: CommissionStatement) -> StatementRead:
    return StatementRead.model_validate(statement, from_attributes=True)


class StatementDetail(StatementRead):
    entries: list[EntryRead]


class KocBalanceRead(BaseModel):
    customer_id: int
    name: str
    status: str
    rule_id: int | None
    balance_fen: int
    unsettled_fen: int
    entries: int


# --- rules -----------------------------------------------------------------------------------


@router.get("/commission-rules", response_model=list[RuleRead])
def list_rules(ctx: Reader) -> list[RuleRead]:
    """Every commission rule of the workspace."""
    return [rule_read(r) for r in rules.list_rules(ctx.session, workspace_id=ctx.actor.workspace_id)]


@router.post("/commission-rules", status_code=201, response_model=RuleRead)
def create_rule(body: RuleIn, ctx: Writer) -> RuleRead:
    """Add a rule: rate_bp 1..5000, days ≥ 1, caps ≥ 0 (null = no cap)."""
    return rule_read(rules.create_rule(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/commission-rules/{rule_id}", response_model=RuleRead)
def get_rule(rule_id: IdPath, ctx: Reader) -> RuleRead:
    """One rule."""
    return rule_read(rules.get_rule(ctx.session, workspace_id=ctx.actor.workspace_id, rule_id=rule_id))


@router.put("/commission-rules/{rule_id}", response_model=RuleRead)
def update_rule(rule_id: IdPath, body: RuleIn, ctx: Writer) -> RuleRead:
    """Replace a rule's settings (earned entries keep their amounts)."""
    return rule_read(rules.update_rule(ctx.session, actor=ctx.actor, rule_id=rule_id, data=body, clock=ctx.clock))


# --- ledger ----------------------------------------------------------------------------------


@router.get("/commission/kocs", response_model=list[KocBalanceRead])
def list_kocs(ctx: Reader) -> list[KocBalanceRead]:
    """Approved KOCs and anyone with entries, with balance and unsettled amount."""
    rows = ledger.koc_summaries(ctx.session, workspace_id=ctx.actor.workspace_id)
    return [KocBalanceRead.model_validate(r, from_attributes=True) for r in rows]


@router.get("/commission/entries", response_model=list[EntryRead])
def list_entries(
    ctx: Reader,
    koc_customer_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
) -> list[EntryRead]:
    """Ledger entries, newest first (one KOC's when `koc_customer_id` is given)."""
    rows = ledger.list_entries(
        ctx.session, workspace_id=ctx.actor.workspace_id, koc_customer_id=koc_customer_id, limit=limit, offset=offset
    )
    return [entry_read(e) for e in rows]


@router.post("/commission/entries", status_code=201, response_model=EntryRead)
def create_adjustment(body: AdjustIn, ctx: Writer) -> EntryRead:
    """An operator's adjustment with a reason; a retry with the same idempotency_key returns the first."""
    return entry_read(ledger.adjust(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


# --- statements ------------------------------------------------------------------------------


def _period(period_start: date | None, period_end: date | None) -> PeriodIn | None:
    if period_start is None and period_end is None:
        return None
    return validated(PeriodIn, {"period_start": period_start, "period_end": period_end})


@router.get("/commission/statements", response_model=list[StatementRead])
def list_statements(
    ctx: Reader,
    period_start: date | None = None,
    period_end: date | None = None,
    status: StatementStatus | None = None,
    koc_customer_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> list[StatementRead]:
    """Statements, newest period first; filter by exact period, status or KOC."""
    rows = statements.list_statements(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        koc_customer_id=koc_customer_id,
        period=_period(period_start, period_end),
        status=status,
    )
    return [statement_read(s) for s in rows]


@router.post("/commission/statements", status_code=201, response_model=list[StatementRead])
def generate_statements(body: PeriodIn, ctx: Writer) -> list[StatementRead]:
    """Gather every KOC's unsettled entries up to period_end (brand-local) into the period's statements."""
    return [statement_read(s) for s in statements.generate(ctx.session, actor=ctx.actor, period=body, clock=ctx.clock)]


def settlement_download(rows: Sequence[statements.ExportRow], *, period: PeriodIn, format: str) -> Response:
    """The settlement export as an attachment, "xlsx" or else CSV (the API and the console page serve
    the same file)."""
    name = f"commission-{period.period_start.isoformat()}-{period.period_end.isoformat()}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff"}
    if format == "xlsx":
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return Response(statements.export_xlsx(rows), media_type=media, headers=headers)
    return Response(statements.export_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/commission/statements/export")
def export_statements(
    ctx: Reader, period_start: date, period_end: date, format: Literal["csv", "xlsx"] = "csv"
) -> Response:
    """The period's statements for payment, as CSV (UTF-8 with BOM) or XLSX."""
    period = validated(PeriodIn, {"period_start": period_start, "period_end": period_end})
    rows = statements.export_rows(ctx.session, workspace_id=ctx.actor.workspace_id, period=period)
    return settlement_download(rows, period=period, format=format)


@router.get("/commission/statements/{statement_id}", response_model=StatementDetail)
def get_statement(statement_id: IdPath, ctx: Reader) -> StatementDetail:
    """One statement with its entries."""
    statement = statements.get_statement(ctx.session, workspace_id=ctx.actor.workspace_id, statement_id=statement_id)
    entries = [entry_read(e) for e in statements.statement_entries(ctx.session, statement=statement)]
    return StatementDetail(**statement_read(statement).model_dump(), entries=entries)


@router.post("/commission/statements/{statement_id}/settle", response_model=StatementRead)
def settle_statement(statement_id: IdPath, body: SettleIn, ctx: Reviewer) -> StatementRead:
    """Settle (pay) a statement with its payment reference; it is frozen afterwards (growth:review)."""
    return statement_read(
        statements.settle(ctx.session, actor=ctx.actor, statement_id=statement_id, data=body, clock=ctx.clock)
    )
