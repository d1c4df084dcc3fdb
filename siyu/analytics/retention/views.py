"""Console pages of analytics: retention (the cohort heat-map, curves, saved reports, drill-downs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics import saved
from siyu.analytics.drill import segment_from_ids
from siyu.analytics.periods import Period, parse_date, parse_whole
from siyu.analytics.retention import service
from siyu.analytics.retention.schemas import MAX_OFFSETS, RetentionConfig, parse_config
from siyu.analytics.tables import export_response
from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.models import ReportKind
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
KIND = ReportKind.RETENTION
CONFIG_KEYS = ("cohort", "grain", "measure", "return_event", "event_type", "criterion", "offsets")
PAGE = "analytics/retention/page.html"


@dataclass
class Report:
    """The page's controls as typed, what they resolved to, and the computed cohorts."""

    values: dict[str, str]
    config: RetentionConfig
    result: service.CohortResult
    errors: dict[str, str] = field(default_factory=dict)

    def query(self) -> str:
        params = {"from": self.result.period.start.isoformat(), "to": self.result.period.end.isoformat()}
        params |= {k: str(v) for k, v in self.config.as_dict().items() if v is not None}
        return urlencode(params)


def _id(text: str, name: str) -> int:
    """A report id from the query or a form; `InvalidInput` naming `name` for anything else
    (`parse_id` refuses non-digits and over-long text before `int()`)."""
    value = parse_id(text)
    if value is None:
        raise InvalidInput(f"{name} must be a report id", details={"field": name})
    return value


def _values(params: Any) -> dict[str, str]:
    return {k: str(params.get(k) or "").strip() for k in (*CONFIG_KEYS, "from", "to")}


def _inputs(ctx: Ctx, values: dict[str, str]) -> tuple[RetentionConfig, Period]:
    """The definition and the (snapped) entry range the controls ask for; `InvalidInput` naming the field."""
    config = parse_config({k: values.get(k) or None for k in CONFIG_KEYS}, prefix="")
    period = service.resolve_period(
        ctx.session,
        actor=ctx.actor,
        clock=ctx.clock,
        config=config,
        date_from=values.get("from"),
        date_to=values.get("to"),
    )
    return config, period


def _compute(ctx: Ctx, values: dict[str, str]) -> tuple[RetentionConfig, service.CohortResult]:
    config, period = _inputs(ctx, values)
    return config, service.cohort_table(ctx.session, actor=ctx.actor, config=config, period=period, clock=ctx.clock)


def _report(request: Request, ctx: Ctx, values: dict[str, str]) -> Report:
    """Compute what the controls ask for; on bad input keep the message and show the defaults."""
    try:
        config, result = _compute(ctx, values)
        return Report(values, config, result)
    except InvalidInput as exc:
        name = str((exc.details or {}).get("field") or "form")
        errors = {name: error_text(request, exc)}
    config, result = _compute(ctx, {})
    return Report(values, config, result, errors)


def _chart(report: Report, translate: Any) -> dict[str, Any]:
    """One line per cohort (rates in percent, null where not reached) and the size-weighted average."""
    result = report.result
    return {
        "offsets": [service.offset_label(report.config, k, translate) for k in result.offsets],
        "cohorts": [
            {"name": r.start.isoformat(), "rates": [None if x is None else round(x * 100, 2) for x in r.rates]}
            for r in result.cohorts
            if r.size
        ],
        "average": [None if x is None else round(x * 100, 2) for x in result.average],
    }


def _page(request: Request, ctx: Ctx, report: Report, *, status_code: int | None = None) -> Response:
    _ = translator(request)
    reports = saved.list_reports(ctx.session, actor=ctx.actor, kind=KIND)
    current = request.query_params.get("report")
    context = {
        "report": report,
        "result": report.result,
        "values": report.values,
        "errors": report.errors,
        "rates": service.rate_table(report.result, _),
        "counts": service.count_table(report.result, _),
        "chart": _chart(report, _),
        "reports": reports,
        "current_report": current,
        "current_name": next((r.name for r in reports if str(r.id) == current), None),
        "offset_label": lambda k: service.offset_label(report.config, k, _),
    }
    status = status_code or (422 if report.errors else 200)
    return render(request, PAGE, context, status_code=status)


@router.get("/analytics/retention")
def retention_page(request: Request, ctx: ConsoleCtx) -> Response:
    """The heat-map and curves; `?report=ID` opens a saved report; `?format=csv|xlsx[&table=counts]` exports."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    values = _values(request.query_params)
    report_id = request.query_params.get("report")
    if report_id:
        stored = saved.get_report(ctx.session, actor=ctx.actor, kind=KIND, report_id=_id(report_id, "report"))
        values |= {k: "" if v is None else str(v) for k, v in stored.config.items() if k in CONFIG_KEYS}
    report = _report(request, ctx, values)
    fmt = request.query_params.get("format")
    if fmt and report.errors:
        # controls that do not parse never export the default report: the page names the field (422)
        return _page(request, ctx, report, status_code=422)
    if fmt:
        _ = translator(request)
        counts = request.query_params.get("table") == "counts"
        table = service.count_table(report.result, _) if counts else service.rate_table(report.result, _)
        return export_response(table, fmt, "retention-counts" if counts else "retention")
    return _page(request, ctx, report)


@router.post("/analytics/retention/cell")
def retention_cell(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Recompute the clicked cell ("2026-11-02:3", or ":all" for the whole cohort) and open its segment."""
    values = _values(form)
    try:
        cohort_text, _sep, offset_text = str(form.get("cell") or "").partition(":")
        cohort = parse_date(cohort_text, "cell")
        if cohort is None or not offset_text.strip():
            raise InvalidInput("cell must look like 2026-11-02:3", details={"field": "cell"})
        offset = None if offset_text == "all" else parse_whole(offset_text, "offset", low=0, high=MAX_OFFSETS)
        config, period = _inputs(ctx, values)
        ids = service.cell_members(
            ctx.session,
            actor=ctx.actor,
            config=config,
            period=period,
            clock=ctx.clock,
            cohort=cohort,
            offset=offset,
        )
        segment = segment_from_ids(
            ctx.session,
            actor=ctx.actor,
            name=service.cell_name(config, cohort, offset),
            customer_ids=ids,
            source=service.cell_source(cohort, offset),
            clock=ctx.clock,
        )
    except DomainError as exc:
        if exc.status_code not in (400, 404, 409, 422):
            raise
        ctx.session.rollback()
        report = _report(request, ctx, values)
        report.errors.setdefault(str((exc.details or {}).get("field") or "form"), error_text(request, exc))
        return _page(request, ctx, report, status_code=422)
    return redirect(f"/segments/{segment.id}")


@router.post("/analytics/retention/reports")
def save_retention_report(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save the current controls as a new report under `name`; only the explicit "更新此报表" form
    sends `report_id`, which replaces that report's definition (keeping the name it posts)."""
    values = _values(form)
    try:
        config = parse_config({k: values.get(k) or None for k in CONFIG_KEYS}, prefix="")
        report_id = str(form.get("report_id") or "").strip()
        stored = saved.save_report(
            ctx.session,
            actor=ctx.actor,
            kind=KIND,
            name=str(form.get("name") or ""),
            config=config.as_dict(),
            clock=ctx.clock,
            report_id=_id(report_id, "report_id") if report_id else None,
        )
    except DomainError as exc:
        if exc.status_code not in (400, 404, 409, 422):
            raise
        ctx.session.rollback()
        report = _report(request, ctx, values)
        report.errors["save"] = error_text(request, exc)
        return _page(request, ctx, report, status_code=422 if exc.status_code != 404 else 404)
    flash(request, translator(request)("已保存"))
    return redirect(f"/analytics/retention?report={stored.id}")


@router.post("/analytics/retention/reports/{report_id}/delete")
def delete_retention_report(request: Request, report_id: IdPath, ctx: ConsoleCtx) -> Response:
    saved.delete_report(ctx.session, actor=ctx.actor, kind=KIND, report_id=report_id, clock=ctx.clock)
    flash(request, translator(request)("已删除"))
    return redirect("/analytics/retention")
