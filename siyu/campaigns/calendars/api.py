"""JSON API of group calendars, personas and moments, and the script library."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from siyu.auth.permissions import Scope
from siyu.campaigns.calendars import groups, moments, personas, scripts
from siyu.campaigns.calendars.common import local_today
from siyu.campaigns.calendars.schemas import (
    EntryIn,
    EntryRead,
    GroupCalendarIn,
    GroupCalendarPatch,
    GroupCalendarRead,
    GroupPostRead,
    MomentIn,
    MomentPatch,
    MomentRead,
    MomentResultsIn,
    MomentWeekRead,
    PersonaIn,
    PersonaRead,
    PreviewIn,
    PreviewRead,
    ScriptIn,
    ScriptPatch,
    ScriptRead,
    ScriptStageRead,
    calendar_read,
    entry_read,
    moment_read,
    persona_read,
    post_read,
    script_read,
)
from siyu.kit.ids import DbId
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["calendars"])
Reader = Annotated[Ctx, Depends(require(Scope.TOUCH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.TOUCH_WRITE))]

# --- group calendars -----------------------------------------------------------------------------


@router.get("/group-calendars", response_model=list[GroupCalendarRead])
def list_group_calendars(ctx: Reader) -> list[GroupCalendarRead]:
    return [
        calendar_read(c, groups.entries_of(ctx.session, c.id)) for c in groups.list_calendars(ctx.session, ctx.actor)
    ]


@router.post("/group-calendars", status_code=201, response_model=GroupCalendarRead)
def create_group_calendar(body: GroupCalendarIn, ctx: Writer) -> GroupCalendarRead:
    """A weekly plan of posts for community groups; content with per-customer variables is a 422."""
    calendar = groups.create_calendar(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock)
    return calendar_read(calendar, groups.entries_of(ctx.session, calendar.id))


@router.get("/group-calendars/{calendar_id}", response_model=GroupCalendarRead)
def get_group_calendar(calendar_id: IdPath, ctx: Reader) -> GroupCalendarRead:
    calendar = groups.get_calendar(ctx.session, ctx.actor, calendar_id)
    return calendar_read(calendar, groups.entries_of(ctx.session, calendar.id))


@router.patch("/group-calendars/{calendar_id}", response_model=GroupCalendarRead)
def update_group_calendar(calendar_id: IdPath, body: GroupCalendarPatch, ctx: Writer) -> GroupCalendarRead:
    """Rename, regroup, change the account or slot times, pause (is_active false) or resume."""
    calendar = groups.update_calendar(ctx.session, actor=ctx.actor, calendar_id=calendar_id, data=body, clock=ctx.clock)
    return calendar_read(calendar, groups.entries_of(ctx.session, calendar.id))


@router.delete("/group-calendars/{calendar_id}", status_code=204)
def delete_group_calendar(calendar_id: IdPath, ctx: Writer) -> Response:
    groups.delete_calendar(ctx.session, actor=ctx.actor, calendar_id=calendar_id, clock=ctx.clock)
    return Response(status_code=204)


@router.post("/group-calendars/{calendar_id}/entries", status_code=201, response_model=EntryRead)
def add_group_calendar_entry(calendar_id: IdPath, body: EntryIn, ctx: Writer) -> EntryRead:
    entry = groups.add_entry(ctx.session, actor=ctx.actor, calendar_id=calendar_id, data=body, clock=ctx.clock)
    return entry_read(entry)


@router.delete("/group-calendars/{calendar_id}/entries/{entry_id}", status_code=204)
def remove_group_calendar_entry(calendar_id: IdPath, entry_id: IdPath, ctx: Writer) -> Response:
    groups.remove_entry(ctx.session, actor=ctx.actor, calendar_id=calendar_id, entry_id=entry_id, clock=ctx.clock)
    return Response(status_code=204)


@router.get("/group-calendars/{calendar_id}/posts", response_model=list[GroupPostRead])
def list_group_posts(
    calendar_id: IdPath, ctx: Reader, on: Annotated[date | None, Query(description="A brand-local day.")] = None
) -> list[GroupPostRead]:
    """What the calendar posted (newest first): status sent, sending or failed with the error."""
    return [post_read(p) for p in groups.posts_of(ctx.session, ctx.actor, calendar_id, on=on)]


# --- personas ------------------------------------------------------------------------------------


@router.get("/personas", response_model=list[PersonaRead])
def list_personas(ctx: Reader) -> list[PersonaRead]:
    return [persona_read(p) for p in personas.list_personas(ctx.session, ctx.actor)]


@router.post("/personas", status_code=201, response_model=PersonaRead)
def create_persona(body: PersonaIn, ctx: Writer) -> PersonaRead:
    return persona_read(personas.create_persona(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/personas/{persona_id}", response_model=PersonaRead)
def get_persona(persona_id: IdPath, ctx: Reader) -> PersonaRead:
    return persona_read(personas.get_persona(ctx.session, ctx.actor, persona_id))


@router.put("/personas/{persona_id}", response_model=PersonaRead)
def update_persona(persona_id: IdPath, body: PersonaIn, ctx: Writer) -> PersonaRead:
    persona = personas.update_persona(ctx.session, actor=ctx.actor, persona_id=persona_id, data=body, clock=ctx.clock)
    return persona_read(persona)


@router.delete("/personas/{persona_id}", status_code=204)
def delete_persona(persona_id: IdPath, ctx: Writer) -> Response:
    personas.delete_persona(ctx.session, actor=ctx.actor, persona_id=persona_id, clock=ctx.clock)
    return Response(status_code=204)


# --- moments -------------------------------------------------------------------------------------


@router.get("/moments", response_model=MomentWeekRead)
def moments_week(
    ctx: Reader,
    persona_id: Annotated[DbId, Query()],
    week: Annotated[date | None, Query(description="Any day of the ISO week; default this week.")] = None,
) -> MomentWeekRead:
    """A persona's posts in one ISO week with the marketing share and the cap."""
    day = week or local_today(ctx.session, ctx.actor.workspace_id, ctx.clock.now())
    result = moments.moment_week(ctx.session, ctx.actor, persona_id, day)
    return MomentWeekRead(
        persona_id=persona_id,
        week_start=result.monday,
        posts=[moment_read(p) for p in result.posts],
        total=result.total,
        marketing=result.marketing,
        marketing_share_pct=result.share_pct,
        cap_pct=result.cap_pct,
    )


@router.post("/moments", status_code=201, response_model=MomentRead)
def plan_moment(body: MomentIn, ctx: Writer) -> MomentRead:
    """Plan a post; over the week's marketing cap it is a 422 naming is_marketing with the numbers."""
    return moment_read(moments.plan_moment(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/moments/{moment_id}", response_model=MomentRead)
def get_moment(moment_id: IdPath, ctx: Reader) -> MomentRead:
    return moment_read(moments.get_moment(ctx.session, ctx.actor, moment_id))


@router.patch("/moments/{moment_id}", response_model=MomentRead)
def update_moment(moment_id: IdPath, body: MomentPatch, ctx: Writer) -> MomentRead:
    post = moments.update_moment(ctx.session, actor=ctx.actor, moment_id=moment_id, data=body, clock=ctx.clock)
    return moment_read(post)


@router.delete("/moments/{moment_id}", status_code=204)
def delete_moment(moment_id: IdPath, ctx: Writer) -> Response:
    moments.delete_moment(ctx.session, actor=ctx.actor, moment_id=moment_id, clock=ctx.clock)
    return Response(status_code=204)


@router.put("/moments/{moment_id}/results", response_model=MomentRead)
def record_moment_results(moment_id: IdPath, body: MomentResultsIn, ctx: Writer) -> MomentRead:
    """Likes and comments of a post (typed in for now; WeCom reporting will fill them)."""
    post = moments.record_results(ctx.session, actor=ctx.actor, moment_id=moment_id, data=body, clock=ctx.clock)
    return moment_read(post)


# --- scripts -------------------------------------------------------------------------------------


@router.get("/scripts", response_model=list[ScriptRead])
def list_scripts(
    ctx: Reader,
    stage: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=100, description="Searches titles and bodies.")] = None,
    tag: Annotated[str | None, Query(max_length=30)] = None,
) -> list[ScriptRead]:
    return [script_read(s) for s in scripts.list_scripts(ctx.session, ctx.actor, stage=stage, q=q, tag=tag)]


@router.get("/scripts/by-stage", response_model=list[ScriptStageRead])
def scripts_by_stage(ctx: Reader, q: Annotated[str | None, Query(max_length=100)] = None) -> list[ScriptStageRead]:
    """The library grouped by stage: greeting, follow_up, objection, after_sale, then a brand's own."""
    found = scripts.list_scripts(ctx.session, ctx.actor, q=q)
    return [
        ScriptStageRead(stage=stage, scripts=[script_read(s) for s in items])
        for stage, items in scripts.grouped_by_stage(found)
    ]


@router.post("/scripts", status_code=201, response_model=ScriptRead)
def create_script(body: ScriptIn, ctx: Writer) -> ScriptRead:
    """A script; an unknown variable or bad template syntax is a 422 naming body."""
    return script_read(scripts.create_script(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/scripts/{script_id}", response_model=ScriptRead)
def get_script(script_id: IdPath, ctx: Reader) -> ScriptRead:
    return script_read(scripts.get_script(ctx.session, ctx.actor, script_id))


@router.patch("/scripts/{script_id}", response_model=ScriptRead)
def update_script(script_id: IdPath, body: ScriptPatch, ctx: Writer) -> ScriptRead:
    return script_read(
        scripts.update_script(ctx.session, actor=ctx.actor, script_id=script_id, data=body, clock=ctx.clock)
    )


@router.delete("/scripts/{script_id}", status_code=204)
def delete_script(script_id: IdPath, ctx: Writer) -> Response:
    scripts.delete_script(ctx.session, actor=ctx.actor, script_id=script_id, clock=ctx.clock)
    return Response(status_code=204)


@router.post("/scripts/{script_id}/preview", response_model=PreviewRead)
def preview_script(script_id: IdPath, body: PreviewIn, ctx: Reader) -> PreviewRead:
    """The script rendered for one customer; a variable the customer has no value for is a 422."""
    text, names = scripts.preview_script(
        ctx.session, actor=ctx.actor, script_id=script_id, customer_id=body.customer_id
    )
    return PreviewRead(text=text, variables=names)
