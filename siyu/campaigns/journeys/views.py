"""Console pages of SOPs and journeys: list, step editor, detail with per-step results, staff tasks.

The editor page holds the definition (trigger, steps, goal) as JSON in a form field; the script
in journeys/form.html edits it as a step list and posts it with the form. The JSON is the source
of truth: the server validates it and, on an error, shows the page again with the message next
to the step (or trigger/goal field) its JSON path names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput
from siyu.models import (
    Channel,
    ChannelAccount,
    CommunityGroup,
    ContentItem,
    CouponTemplate,
    CouponTemplateStatus,
    Customer,
    Journey,
    JourneyEnrolment,
    Script,
    Segment,
    Staff,
    StaffTaskStatus,
    Tag,
)
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

from . import service

router = APIRouter(include_in_schema=False)
FORM = "journeys/form.html"
MAX_DEFINITION_BYTES = 256 * 1024
EMPTY: dict[str, Any] = {"trigger": {"type": "relationship_added"}, "steps": [], "goal": None}


# --- list --------------------------------------------------------------------------------------


@router.get("/journeys")
def journeys_page(request: Request, ctx: ConsoleCtx, archived: bool = False) -> Response:
    journeys = service.list_journeys(ctx.session, ctx.actor, include_archived=archived)
    counts: dict[int, dict[str, int]] = {}
    if journeys:
        for journey_id, status, n in ctx.session.execute(
            select(JourneyEnrolment.journey_id, JourneyEnrolment.status, func.count())
            .where(JourneyEnrolment.journey_id.in_([j.id for j in journeys]))
            .group_by(JourneyEnrolment.journey_id, JourneyEnrolment.status)
        ):
            counts.setdefault(journey_id, {})[str(status)] = n
    rows = [{"journey": j, "counts": counts.get(j.id, {})} for j in journeys]
    return render(request, "journeys/list.html", {"rows": rows, "archived": archived})


# --- staff tasks (before /journeys/{journey_id}, which would claim the path) ----------------------


@router.get("/journeys/tasks")
def tasks_page(request: Request, ctx: ConsoleCtx, done: bool = False) -> Response:
    """The staff member's open tasks (operators see everyone's)."""
    status = StaffTaskStatus.DONE if done else StaffTaskStatus.OPEN
    tasks = service.list_tasks(ctx.session, ctx.actor, status=status)
    customer_ids = {t.customer_id for t in tasks if t.customer_id}
    script_ids = {t.script_id for t in tasks if t.script_id}
    staff_ids = {t.staff_id for t in tasks if t.staff_id}
    names = {
        "customers": _names(ctx, Customer, customer_ids),
        "scripts": {s.id: s for s in ctx.session.scalars(select(Script).where(Script.id.in_(script_ids)))},
        "staff": _names(ctx, Staff, staff_ids),
    }
    return render(request, "journeys/tasks.html", {"tasks": tasks, "names": names, "done": done})


@router.post("/journeys/tasks/{task_id}/done")
def task_done(request: Request, task_id: IdPath, ctx: ConsoleCtx) -> Response:
    service.complete_task(ctx.session, actor=ctx.actor, task_id=task_id, clock=ctx.clock)
    flash(request, translator(request)("任务已完成"))
    return redirect("/journeys/tasks")


def _names(ctx: Ctx, model: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {i: n or f"#{i}" for i, n in ctx.session.execute(select(model.id, model.name).where(model.id.in_(ids)))}


# --- the editor --------------------------------------------------------------------------------


@dataclass
class JourneyForm:
    """The editor form as posted (or as first shown)."""

    name: str = ""
    reentry: bool = False
    channel_account_ids: list[int] = field(default_factory=list)
    definition: str = json.dumps(EMPTY)

    @classmethod
    def from_form(cls, form: FormData) -> JourneyForm:
        name = form.get("name")
        definition = form.get("definition")
        accounts = [int(v) for v in form.getlist("channel_account_ids") if isinstance(v, str) and v.isdigit()]
        return cls(
            name=name if isinstance(name, str) else "",
            reentry=form.get("reentry") in ("1", "on", "true"),
            channel_account_ids=accounts[:100],
            definition=definition if isinstance(definition, str) else json.dumps(EMPTY),
        )

    @classmethod
    def from_journey(cls, journey: Journey) -> JourneyForm:
        definition = {"trigger": journey.trigger, "steps": journey.steps, "goal": journey.goal}
        return cls(
            name=journey.name,
            reentry=journey.reentry,
            channel_account_ids=list(journey.channel_account_ids),
            definition=json.dumps(definition, ensure_ascii=False),
        )

    def parsed(self) -> dict[str, Any]:
        """The posted definition, or `InvalidInput` at "$" when it is not a JSON object."""
        if len(self.definition.encode()) > MAX_DEFINITION_BYTES:
            raise InvalidInput("$: the definition is too large", details={"field": "definition", "path": "$"})
        try:
            value = json.loads(self.definition)
        except (ValueError, RecursionError):
            raise InvalidInput(
                "$: the definition is not valid JSON", details={"field": "definition", "path": "$"}
            ) from None
        if not isinstance(value, dict):
            raise InvalidInput("$: expected an object", details={"field": "definition", "path": "$"})
        return value

    def as_input(self) -> service.JourneyInput:
        value = self.parsed()
        return service.JourneyInput(
            name=self.name,
            trigger=value.get("trigger"),
            steps=value.get("steps"),
            goal=value.get("goal"),
            channel_account_ids=list(self.channel_account_ids),
            reentry=self.reentry,
        )


def catalog(ctx: Ctx) -> dict[str, Any]:
    """What the editor's pickers list: contents, tags, segments, accounts, staff, groups, scripts, channels,
    coupon templates (archived ones too, marked, so a step naming one still shows its name)."""
    session, ws = ctx.session, ctx.actor.workspace_id

    def pairs(model: Any, label: Any, *where: Any) -> list[dict[str, Any]]:
        query = select(model.id, label).where(model.workspace_id == ws, *where).order_by(model.id).limit(1000)
        return [{"id": i, "name": n} for i, n in session.execute(query)]

    return {
        "contents": pairs(ContentItem, ContentItem.name, ContentItem.archived_at.is_(None)),
        "tags": pairs(Tag, Tag.name),
        "segments": [
            {"id": s.id, "name": s.name, "tracked": s.is_tracked}
            for s in session.scalars(
                select(Segment).where(Segment.workspace_id == ws, Segment.archived_at.is_(None)).order_by(Segment.id)
            )
        ],
        "accounts": pairs(ChannelAccount, ChannelAccount.name, ChannelAccount.is_active.is_(True)),
        "staff": pairs(Staff, Staff.name),
        "groups": pairs(CommunityGroup, CommunityGroup.name),
        "scripts": pairs(Script, Script.title),
        "channels": pairs(Channel, Channel.name),
        "coupon_templates": [
            {"id": i, "name": n, "active": status == CouponTemplateStatus.ACTIVE}
            for i, n, status in session.execute(
                select(CouponTemplate.id, CouponTemplate.name, CouponTemplate.status)
                .where(CouponTemplate.workspace_id == ws)
                .order_by(CouponTemplate.id)
                .limit(1000)
            )
        ],
    }


def _initial(text: str) -> Any:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return EMPTY
    return value if isinstance(value, dict) else EMPTY


def _form_page(
    request: Request,
    ctx: Ctx,
    values: JourneyForm,
    journey: Journey | None,
    *,
    error: DomainError | None = None,
    status_code: int = 200,
) -> Response:
    details = error.details if error is not None and isinstance(error.details, dict) else {}
    data = {
        "definition": _initial(values.definition),
        "catalog": catalog(ctx),
        "error_path": details.get("path") if error is not None else None,
        "error": error.message if error is not None else None,
    }
    context = {
        "journey": journey,
        "values": values,
        "data": data,
        "accounts": data["catalog"]["accounts"],
        "errors": {"form": error_text(request, error)} if error is not None else {},
    }
    return render(request, FORM, context, status_code=status_code)


@router.get("/journeys/new")
def new_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    return _form_page(request, ctx, JourneyForm(), None)


@router.post("/journeys")
def create(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = JourneyForm.from_form(form)
    try:
        journey = service.create_journey(ctx.session, actor=ctx.actor, data=values.as_input(), clock=ctx.clock)
    except (InvalidInput, DomainError) as exc:
        ctx.session.rollback()
        return _form_page(request, ctx, values, None, error=exc, status_code=exc.status_code)
    flash(request, translator(request)("旅程已保存"))
    return redirect(f"/journeys/{journey.id}")


@router.get("/journeys/{journey_id}/edit")
def edit_page(request: Request, journey_id: IdPath, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    journey = service.get_journey(ctx.session, ctx.actor, journey_id)
    return _form_page(request, ctx, JourneyForm.from_journey(journey), journey)


@router.post("/journeys/{journey_id}/edit")
def edit(request: Request, journey_id: IdPath, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = JourneyForm.from_form(form)
    try:
        journey = service.update_journey(
            ctx.session, actor=ctx.actor, journey_id=journey_id, data=values.as_input(), clock=ctx.clock
        )
    except DomainError as exc:
        ctx.session.rollback()
        current = service.get_journey(ctx.session, ctx.actor, journey_id)
        return _form_page(request, ctx, values, current, error=exc, status_code=exc.status_code)
    flash(request, translator(request)("旅程已保存"))
    return redirect(f"/journeys/{journey.id}")


# --- detail and lifecycle ----------------------------------------------------------------------


@router.get("/journeys/{journey_id}")
def detail_page(request: Request, journey_id: IdPath, ctx: ConsoleCtx) -> Response:
    journey = service.get_journey(ctx.session, ctx.actor, journey_id)
    stats = service.journey_stats(ctx.session, ctx.actor, journey_id)
    recent = service.enrolments_page(ctx.session, ctx.actor, journey_id, limit=20)
    context = {
        "journey": journey,
        "stats": stats,
        "recent": recent.items,
        "customers": _names(ctx, Customer, {e.customer_id for e in recent.items}),
        "names": {key: {x["id"]: x["name"] for x in items} for key, items in catalog(ctx).items()},
    }
    return render(request, "journeys/detail.html", context)


def _lifecycle(request: Request, ctx: Ctx, journey_id: int, action: str) -> Response:
    _ = translator(request)
    actions = {
        "activate": (service.activate_journey, _("旅程已启用")),
        "pause": (service.pause_journey, _("旅程已暂停")),
        "archive": (service.archive_journey, _("旅程已归档")),
    }
    change, message = actions[action]
    try:
        change(ctx.session, actor=ctx.actor, journey_id=journey_id, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code in (401, 403, 404):
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect(f"/journeys/{journey_id}")
    flash(request, message)
    return redirect(f"/journeys/{journey_id}")


@router.post("/journeys/{journey_id}/activate")
def activate(request: Request, journey_id: IdPath, ctx: ConsoleCtx) -> Response:
    return _lifecycle(request, ctx, journey_id, "activate")


@router.post("/journeys/{journey_id}/pause")
def pause(request: Request, journey_id: IdPath, ctx: ConsoleCtx) -> Response:
    return _lifecycle(request, ctx, journey_id, "pause")


@router.post("/journeys/{journey_id}/archive")
def archive(request: Request, journey_id: IdPath, ctx: ConsoleCtx) -> Response:
    return _lifecycle(request, ctx, journey_id, "archive")


__all__ = ["router"]
