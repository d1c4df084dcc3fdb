"""The analytics settings: console page `/analytics/settings` and `GET/PUT /api/v1/analytics/settings`.

Both routers are included by the RFM area's routers (`siyu.analytics.rfm.views` / `.api`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from siyu.analytics.periods import parse_whole
from siyu.analytics.rfm.naming import default_document
from siyu.analytics.rfm.schemas import SettingsIn
from siyu.analytics.settings import (
    WHOLE_RANGES,
    current_settings,
    settings_document,
    update_settings,
    validate_changes,
)
from siyu.auth.permissions import Scope
from siyu.channels.money import parse_percent, parse_yuan
from siyu.kit.errors import InvalidInput
from siyu.models import AnalyticsSettings
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, require
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
api_router = APIRouter()
Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]
FORM_FIELDS = (
    "rfm_window_days",
    "rfm_segments",
    "gross_margin_pct",
    "operating_cost_yuan",
    "super_user_top_pct",
    "clv_horizon_days",
    "clv_time_unit",
)


@api_router.get("/settings")
def get_settings(ctx: Reader) -> dict[str, Any]:
    """The settings in force (defaults when never saved; an empty `rfm_segments` means the shipped table)."""
    return settings_document(current_settings(ctx.session, ctx.actor.workspace_id, ctx.clock))


@api_router.put("/settings")
def put_settings(body: SettingsIn, ctx: Writer) -> dict[str, Any]:
    """Change the fields sent; a bad field is a 422 naming it and nothing is saved."""
    changes = body.model_dump(exclude_unset=True)
    row = update_settings(ctx.session, actor=ctx.actor, changes=changes, clock=ctx.clock)
    return settings_document(row)


# --- console --------------------------------------------------------------------------------------


def _values_of(row: AnalyticsSettings) -> dict[str, str]:
    segments = row.rfm_segments or []
    return {
        "rfm_window_days": str(row.rfm_window_days),
        "rfm_segments": json.dumps(segments, ensure_ascii=False, indent=1) if segments else "",
        "gross_margin_pct": "" if row.gross_margin_bp is None else f"{row.gross_margin_bp / 100:g}",
        "operating_cost_yuan": ""
        if row.operating_cost_fen_per_member_month is None
        else f"{row.operating_cost_fen_per_member_month / 100:.2f}",
        "super_user_top_pct": str(row.super_user_top_pct),
        "clv_horizon_days": str(row.clv_horizon_days),
        "clv_time_unit": row.clv_time_unit,
    }


MAX_NUMBER_CHARS = 32
"""Money and percent fields longer than this are refused before parsing."""
MAX_SEGMENTS_CHARS = 20_000
"""The naming-table JSON (30 rules fit in a few thousand characters)."""


def _segments_json(text: str) -> Any:
    if len(text) > MAX_SEGMENTS_CHARS:
        raise InvalidInput(
            f"rfm_segments is too long (more than {MAX_SEGMENTS_CHARS:,} characters)", details={"field": "rfm_segments"}
        )
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"rfm_segments is not valid JSON: {exc}", details={"field": "rfm_segments"}) from None
    except RecursionError:
        raise InvalidInput("rfm_segments is nested too deeply", details={"field": "rfm_segments"}) from None


def _parse_field(name: str, text: str) -> dict[str, Any]:
    """One form field as the service's change (storage units), raising `InvalidInput` on it."""
    text = text.strip()
    if name == "rfm_segments":
        return {"rfm_segments": _segments_json(text) if text else []}
    if name in ("gross_margin_pct", "operating_cost_yuan") and len(text) > MAX_NUMBER_CHARS:
        raise InvalidInput(f"{name} is not a number", details={"field": name})
    if name == "gross_margin_pct":
        return {"gross_margin_bp": parse_percent(text, field="gross_margin_bp") if text else None}
    if name == "operating_cost_yuan":
        cost = parse_yuan(text, field="operating_cost_fen_per_member_month") if text else None
        return {"operating_cost_fen_per_member_month": cost}
    if name == "clv_time_unit":
        return {name: text}
    low, high = WHOLE_RANGES[name]
    return {name: parse_whole(text, name, low=low, high=high)}


def _page(request: Request, values: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
    context = {
        "values": values,
        "errors": errors,
        "default_segments": json.dumps(default_document(), ensure_ascii=False, indent=1),
    }
    return render(request, "analytics/settings.html", context, status_code=status)


@router.get("/analytics/settings")
def settings_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ANALYTICS_READ)
    return _page(request, _values_of(current_settings(ctx.session, ctx.actor.workspace_id, ctx.clock)), {})


@router.post("/analytics/settings")
def save_settings(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save the form; every bad field gets its own message and nothing is saved."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    values = {name: str(form.get(name) or "") for name in FORM_FIELDS}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in FORM_FIELDS:
        try:
            change = _parse_field(name, values[name])
            validate_changes(change)
            changes |= change
        except InvalidInput as exc:
            errors[name] = error_text(request, exc)
    if errors:
        return _page(request, values, errors, status=422)
    update_settings(ctx.session, actor=ctx.actor, changes=changes, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("分析设置已保存"))
    return redirect("/analytics/settings")


__all__ = ["api_router", "router"]
