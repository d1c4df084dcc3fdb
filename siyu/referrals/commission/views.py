"""Console pages of distribution commission: rules, each KOC's ledger (and adjustments), statements,
settlement and the settlement export."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import (
    FormField,
    brand_tz,
    customer_names,
    error_field,
    form_page,
    object_values,
    parse,
    parse_yuan,
    text_values,
    validated,
    yuan_text,
)
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError, InvalidInput
from siyu.referrals.commission import ledger, rules, statements
from siyu.referrals.commission.api import settlement_download
from siyu.referrals.commission.schemas import AdjustIn, PeriodIn, RuleIn, SettleIn
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
BASE = "/growth/commission"


def _(message: str) -> str:
    return message


RULE_FIELDS = (
    FormField("name", _("规则名称"), required=True),
    FormField("rate_bp", _("佣金比例（基点）"), kind="int", required=True, hint=_("1000 = 10%，范围 1–5000")),
    FormField("days", _("有效天数"), kind="int", required=True, hint=_("推荐后多少天内的订单计佣")),
    FormField("cap_per_referee_fen", _("每位新客佣金上限（元）"), kind="yuan", hint=_("留空为不限")),
    FormField("cap_per_month_fen", _("每月佣金上限（元）"), kind="yuan", hint=_("留空为不限")),
    FormField("is_active", _("启用"), kind="bool"),
)
KIND_LABELS = {"earn": _("订单佣金"), "reverse": _("退款冲回"), "adjust": _("人工调整")}
STATUS_LABELS = {"open": _("待结算"), "settled": _("已结算")}


def last_month(clock: Clock, ctx: Ctx) -> PeriodIn:
    """The brand-local calendar month before today: the default statement period."""
    today = clock.now().astimezone(brand_tz(ctx.session, ctx.actor.workspace_id)).date()
    end = today.replace(day=1) - timedelta(days=1)
    return PeriodIn(period_start=end.replace(day=1), period_end=end)


def _period_from(values: dict[str, str]) -> PeriodIn:
    data: dict[str, Any] = {}
    for name in ("period_start", "period_end"):
        try:
            data[name] = date.fromisoformat(values.get(name, "").strip())
        except ValueError:
            raise InvalidInput(f"{name}: expected a date YYYY-MM-DD", details={"field": name}) from None
    return validated(PeriodIn, data)


@router.get(BASE)
def commission_page(request: Request, ctx: ConsoleCtx, period_start: str = "", period_end: str = "") -> Response:
    """Rules, KOC balances and the statements of a period."""
    ctx.actor.require(Scope.GROWTH_READ)
    ws = ctx.actor.workspace_id
    errors: dict[str, str] = {}
    try:
        period = _period_from({"period_start": period_start, "period_end": period_end}) if period_start else None
    except DomainError as exc:
        errors["period"] = error_text(request, exc)
        period = None
    shown = period or last_month(ctx.clock, ctx)
    rows = statements.list_statements(ctx.session, workspace_id=ws, period=period)
    context = {
        "rules": rules.list_rules(ctx.session, workspace_id=ws),
        "kocs": ledger.koc_summaries(ctx.session, workspace_id=ws),
        "statements": rows,
        "names": customer_names(ctx.session, ws, [s.koc_customer_id for s in rows]),
        "period": shown,
        "filtered": period is not None,
        "status_labels": STATUS_LABELS,
        "yuan": yuan_text,
        "errors": errors,
    }
    return render(request, "commission/index.html", context, status_code=422 if errors else 200)


# --- rules -----------------------------------------------------------------------------------


def _rule_form(
    request: Request, values: dict[str, str], rule_id: int | None, errors: dict[str, str] | None = None
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑佣金规则") if rule_id else _("新建佣金规则"),
        back=BASE,
        action=f"{BASE}/rules/{rule_id}/edit" if rule_id else f"{BASE}/rules",
        spec=RULE_FIELDS,
        values=values,
        errors=errors,
    )


def _rule_input(values: dict[str, str], ctx: Ctx) -> RuleIn:
    return validated(RuleIn, parse(values, RULE_FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id)))


@router.get(BASE + "/rules/new")
def new_rule_page(request: Request, ctx: ConsoleCtx) -> Response:
    """The empty rule form."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    return _rule_form(request, {"rate_bp": "1000", "days": "30", "is_active": "on"}, None)


@router.post(BASE + "/rules")
def create_rule(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save a new rule; a refused value shows the form again with the field named."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = text_values(form, RULE_FIELDS)
    try:
        rule = rules.create_rule(ctx.session, actor=ctx.actor, data=_rule_input(values, ctx), clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _rule_form(request, values, None, {error_field(exc, RULE_FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("佣金规则已保存") + f": {rule.name}")
    return redirect(BASE)


@router.get(BASE + "/rules/{rule_id}/edit")
def edit_rule_page(request: Request, ctx: ConsoleCtx, rule_id: IdPath) -> Response:
    """A rule's form."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    rule = rules.get_rule(ctx.session, workspace_id=ctx.actor.workspace_id, rule_id=rule_id)
    return _rule_form(request, object_values(rule, RULE_FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id)), rule_id)


@router.post(BASE + "/rules/{rule_id}/edit")
def update_rule(request: Request, ctx: ConsoleCtx, rule_id: IdPath, form: FormDep) -> Response:
    """Save a rule's changes."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = text_values(form, RULE_FIELDS)
    try:
        data = _rule_input(values, ctx)
        rule = rules.update_rule(ctx.session, actor=ctx.actor, rule_id=rule_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _rule_form(request, values, rule_id, {error_field(exc, RULE_FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("佣金规则已保存") + f": {rule.name}")
    return redirect(BASE)


# --- a KOC's ledger ----------------------------------------------------------------------------


def _koc_page(request: Request, ctx: Ctx, customer_id: int, values: dict[str, str], errors: dict[str, str]) -> Response:
    ws = ctx.actor.workspace_id
    customer = ledger.koc_customer(ctx.session, workspace_id=ws, customer_id=customer_id)
    context = {
        "koc": customer,
        "balance": ledger.balance(ctx.session, workspace_id=ws, koc_customer_id=customer_id),
        "unsettled": ledger.unsettled(ctx.session, workspace_id=ws, koc_customer_id=customer_id),
        "entries": ledger.list_entries(ctx.session, workspace_id=ws, koc_customer_id=customer_id, limit=200),
        "statements": statements.list_statements(ctx.session, workspace_id=ws, koc_customer_id=customer_id),
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "yuan": yuan_text,
        "values": values,
        "errors": errors,
        "adjust_key": values.get("key") or uuid.uuid4().hex,
    }
    return render(request, "commission/koc.html", context, status_code=422 if errors else 200)


@router.get(BASE + "/kocs/{customer_id}")
def koc_page(request: Request, ctx: ConsoleCtx, customer_id: IdPath) -> Response:
    """One KOC's balance, entries with reasons, statements, and the adjustment form."""
    ctx.actor.require(Scope.GROWTH_READ)
    return _koc_page(request, ctx, customer_id, {}, {})


@router.post(BASE + "/kocs/{customer_id}/adjust")
def adjust(request: Request, ctx: ConsoleCtx, customer_id: IdPath, form: FormDep) -> Response:
    """Add an adjustment (yuan, either sign) with a reason; the form's key makes a double submit one entry."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = {k: str(form.get(k) or "").strip() for k in ("amount", "reason", "key")}
    try:
        text = values["amount"]
        negative = text.startswith("-")
        fen = parse_yuan(text.removeprefix("-"), "amount_fen") if text else 0
        data = validated(
            AdjustIn,
            {
                "koc_customer_id": customer_id,
                "amount_fen": -fen if negative else fen,
                "reason": values["reason"],
                "idempotency_key": values["key"] or None,
            },
        )
        ledger.adjust(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        field = str((exc.details or {}).get("field", "form")) if isinstance(exc.details, dict) else "form"
        return _koc_page(request, ctx, customer_id, values, {field: error_text(request, exc)})
    _ = translator(request)
    flash(request, _("佣金已调整"))
    return redirect(f"{BASE}/kocs/{customer_id}")


# --- statements --------------------------------------------------------------------------------


@router.post(BASE + "/statements")
def generate(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Generate the period's statements, then show them."""
    ctx.actor.require(Scope.GROWTH_WRITE)
    values = {k: str(form.get(k) or "") for k in ("period_start", "period_end")}
    _ = translator(request)
    try:
        period = _period_from(values)
        made = statements.generate(ctx.session, actor=ctx.actor, period=period, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 403:
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect(BASE)
    flash(request, _("已生成结算单") + f": {len(made)}")
    return redirect(f"{BASE}?period_start={period.period_start}&period_end={period.period_end}")


@router.get(BASE + "/statements/{statement_id}")
def statement_page(request: Request, ctx: ConsoleCtx, statement_id: IdPath) -> Response:
    """A statement's entries and, while open, the settle form."""
    ctx.actor.require(Scope.GROWTH_READ)
    ws = ctx.actor.workspace_id
    statement = statements.get_statement(ctx.session, workspace_id=ws, statement_id=statement_id)
    context = {
        "statement": statement,
        "name": customer_names(ctx.session, ws, [statement.koc_customer_id]).get(statement.koc_customer_id, ""),
        "entries": statements.statement_entries(ctx.session, statement=statement),
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "yuan": yuan_text,
        "errors": {},
    }
    return render(request, "commission/statement.html", context)


@router.post(BASE + "/statements/{statement_id}/settle")
def settle(request: Request, ctx: ConsoleCtx, statement_id: IdPath, form: FormDep) -> Response:
    """Settle a statement with the payment reference (growth:review)."""
    ctx.actor.require(Scope.GROWTH_REVIEW)
    _ = translator(request)
    try:
        data = validated(SettleIn, {"payment_ref": str(form.get("payment_ref") or "")})
        statements.settle(ctx.session, actor=ctx.actor, statement_id=statement_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect(f"{BASE}/statements/{statement_id}")
    flash(request, _("结算单已结算"))
    return redirect(f"{BASE}/statements/{statement_id}")


@router.get(BASE + "/export")
def export(
    request: Request, ctx: ConsoleCtx, period_start: str = "", period_end: str = "", format: str = "csv"
) -> Response:
    """Download the period's settlement as CSV or XLSX."""
    ctx.actor.require(Scope.GROWTH_READ)
    if format not in ("csv", "xlsx"):
        raise InvalidInput("format: expected csv or xlsx", details={"field": "format"})
    period = _period_from({"period_start": period_start, "period_end": period_end})
    rows = statements.export_rows(ctx.session, workspace_id=ctx.actor.workspace_id, period=period)
    return settlement_download(rows, period=period, format=format)
