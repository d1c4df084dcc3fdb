"""Console pages of analytics: funnels (write or open a funnel, run it, export, save, drill into who
reached or dropped off at a step)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics.funnels import report, service
from siyu.analytics.funnels.schemas import DEFAULT_DEFINITION, MAX_STEPS
from siyu.analytics.funnels.service import FunnelResult
from siyu.analytics.periods import parse_whole
from siyu.analytics.tables import export_response
from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import render, translator

router = APIRouter(include_in_schema=False)
PAGE = "/analytics/funnels"
TEMPLATE = "analytics/funnels/page.html"
MAX_DEFINITION_CHARS = 20_000
"""A funnel of 10 steps and 5 exclusions fits in a few thousand characters."""


def _field(exc: DomainError) -> str:
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    if not field:
        return "definition"
    return field if field in ("from", "to", "name", "step", "breakdown_value", "report") else "definition"


def _definition_of(text: str | None) -> dict[str, Any] | None:
    if text is None or not text.strip():
        return None
    if len(text) > MAX_DEFINITION_CHARS:
        raise InvalidInput(
            f"definition is too long (at most {MAX_DEFINITION_CHARS} characters)", details={"field": "definition"}
        )
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidInput("definition is nested too deeply", details={"field": "definition"}) from None
    except ValueError as exc:
        raise InvalidInput(f"definition is not valid JSON: {exc}", details={"field": "definition"}) from None
    if not isinstance(value, dict):
        raise InvalidInput("definition must be a JSON object", details={"field": "definition"})
    return value


def _report_id(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    report_id = parse_id(text)
    if report_id is None:
        raise InvalidInput("report must be a saved funnel id", details={"field": "report"})
    return report_id


def _compute(ctx: Ctx, params: dict[str, str]) -> tuple[dict[str, Any], FunnelResult]:
    """Resolve the page's parameters and run the funnel (raises `DomainError` on bad input)."""
    report_id = _report_id(params.get("report"))
    definition = service.resolve_definition(
        ctx.session, actor=ctx.actor, definition=_definition_of(params.get("definition")), report_id=report_id
    )
    period = service.resolve_period(
        ctx.session, actor=ctx.actor, clock=ctx.clock, date_from=params.get("from"), date_to=params.get("to")
    )
    result = service.run_funnel(ctx.session, actor=ctx.actor, definition=definition, period=period, clock=ctx.clock)
    return definition, result


def _page(
    request: Request, ctx: Ctx, params: dict[str, str], *, result: FunnelResult | None, errors: dict[str, str]
) -> Response:
    _ = translator(request)
    saved = service.list_funnels(ctx.session, actor=ctx.actor)
    text = params.get("definition") or ""
    current = definition_json = None
    if result is not None:
        definition_json = json.dumps(result.definition.as_json(), ensure_ascii=False)
        text = json.dumps(result.definition.as_json(), ensure_ascii=False, indent=2)
        query = {"definition": json.dumps(result.definition.as_json(), ensure_ascii=False)}
        query |= {"from": result.period.start.isoformat(), "to": result.period.end.isoformat()}
        current = urlencode(query)
    elif not text:
        text = json.dumps(DEFAULT_DEFINITION, ensure_ascii=False, indent=2)
    report_id = params.get("report") or ""
    context = {
        "saved": saved,
        "report_id": report_id,
        "report_name": next((r.name for r in saved if str(r.id) == report_id), ""),
        "definition_text": text,
        "date_from": result.period.start.isoformat() if result else params.get("from", ""),
        "date_to": result.period.end.isoformat() if result else params.get("to", ""),
        "result": result,
        "errors": errors,
        "query": current,
        "definition_json": definition_json,
        "steps_table": report.steps_table(result, _) if result else None,
        "breakdown_table": report.breakdown_table(result, _) if result and result.definition.breakdown else None,
        "chart": report.chart_data(result, _) if result else None,
        "group_labels": {g.key: report.group_label(g, _) for g in result.breakdown} if result else {},
    }
    return render(request, TEMPLATE, context, status_code=422 if errors else 200)


@router.get(PAGE)
def funnels_page(request: Request, ctx: ConsoleCtx) -> Response:
    """The funnel page; `?format=csv|xlsx` (and `table=breakdown`) downloads a table instead."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    params = dict(request.query_params)
    try:
        _definition, result = _compute(ctx, params)
    except DomainError as exc:
        return _page(request, ctx, params, result=None, errors={_field(exc): error_text(request, exc)})
    fmt = params.get("format")
    if fmt:
        _ = translator(request)
        if params.get("table") == "breakdown":
            return export_response(report.breakdown_table(result, _), fmt, "funnel-breakdown")
        return export_response(report.steps_table(result, _), fmt, "funnel")
    return _page(request, ctx, params, result=result, errors={})


def _form_params(form: FormDep) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post(f"{PAGE}/save")
def save_funnel(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save the definition in the form under a name (replacing the opened funnel when "report" is set)."""
    params = _form_params(form)
    try:
        definition = _definition_of(params.get("definition"))
        if definition is None:
            raise InvalidInput("write a funnel definition first", details={"field": "definition"})
        saved = service.save_funnel(
            ctx.session,
            actor=ctx.actor,
            name=params.get("name", ""),
            definition=definition,
            clock=ctx.clock,
            report_id=_report_id(params.get("report")),
        )
    except DomainError as exc:
        if exc.status_code == 403:
            raise
        ctx.session.rollback()
        return _page(request, ctx, params, result=None, errors={_field(exc): error_text(request, exc)})
    query = {"report": saved.id} | {k: params[k] for k in ("from", "to") if params.get(k)}
    return redirect(f"{PAGE}?{urlencode(query)}")


@router.post(f"{PAGE}/{{report_id}}/delete")
def delete_funnel(report_id: IdPath, ctx: ConsoleCtx) -> Response:
    service.delete_funnel(ctx.session, actor=ctx.actor, report_id=report_id, clock=ctx.clock)
    return redirect(PAGE)


def _drill(request: Request, ctx: Ctx, form: FormDep, *, reached: bool) -> Response:
    """Recompute the funnel from the form's parameters and open a segment of one step's customers."""
    params = _form_params(form)
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    make = service.reached_segment if reached else service.drop_off_segment
    try:
        step = parse_whole(params.get("step"), "step", low=1, high=MAX_STEPS)
        definition = service.resolve_definition(
            ctx.session, actor=ctx.actor, definition=_definition_of(params.get("definition")), report_id=None
        )
        period = service.resolve_period(
            ctx.session, actor=ctx.actor, clock=ctx.clock, date_from=params.get("from"), date_to=params.get("to")
        )
        segment, _members = make(
            ctx.session,
            actor=ctx.actor,
            definition=definition,
            period=period,
            step=step,
            clock=ctx.clock,
            breakdown_value=params.get("breakdown_value") if "breakdown_value" in params else None,
        )
    except DomainError as exc:
        if exc.status_code == 403:
            raise
        ctx.session.rollback()
        return _page(request, ctx, params, result=None, errors={_field(exc): error_text(request, exc)})
    return redirect(f"/segments/{segment.id}")


@router.post(f"{PAGE}/drop-off")
def drop_off(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """A segment of the customers who reached the form's step and not the next one."""
    return _drill(request, ctx, form, reached=False)


@router.post(f"{PAGE}/reached")
def reached(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """A segment of the customers who reached the form's step (in total or in one breakdown group)."""
    return _drill(request, ctx, form, reached=True)
