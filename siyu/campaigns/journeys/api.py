"""JSON API of SOPs and journeys: CRUD, activate/pause/archive, enrolments, results, staff tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from siyu.auth.permissions import Scope
from siyu.kit.ids import MAX_ID
from siyu.kit.pagination import MAX_PAGE_SIZE
from siyu.models import EnrolmentStatus, StaffTaskStatus
from siyu.web.deps import ApiCtx, Ctx, IdPath, require

from . import service
from .schemas import (
    EnrolmentPage,
    JourneyIn,
    JourneyRead,
    JourneyStatsRead,
    StaffTaskRead,
    enrolment_read,
    journey_read,
    stats_read,
    task_read,
)

router = APIRouter(prefix="/api/v1", tags=["journeys"])
Reader = Annotated[Ctx, Depends(require(Scope.TOUCH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.TOUCH_WRITE))]


@router.get("/journeys", response_model=list[JourneyRead])
def list_journeys(ctx: Reader, include_archived: bool = False) -> list[JourneyRead]:
    return [journey_read(j) for j in service.list_journeys(ctx.session, ctx.actor, include_archived=include_archived)]


@router.post("/journeys", status_code=201, response_model=JourneyRead)
def create_journey(body: JourneyIn, ctx: Writer) -> JourneyRead:
    """Save a draft; a definition that cannot run is a 422 whose `details.path` names the place."""
    return journey_read(service.create_journey(ctx.session, actor=ctx.actor, data=body.as_input(), clock=ctx.clock))


@router.get("/journeys/{journey_id}", response_model=JourneyRead)
def get_journey(journey_id: IdPath, ctx: Reader) -> JourneyRead:
    return journey_read(service.get_journey(ctx.session, ctx.actor, journey_id))


@router.put("/journeys/{journey_id}", response_model=JourneyRead)
def update_journey(journey_id: IdPath, body: JourneyIn, ctx: Writer) -> JourneyRead:
    """Replace the definition of a draft or paused journey (409 while it runs)."""
    journey = service.update_journey(
        ctx.session, actor=ctx.actor, journey_id=journey_id, data=body.as_input(), clock=ctx.clock
    )
    return journey_read(journey)


@router.delete("/journeys/{journey_id}", status_code=204)
def archive_journey(journey_id: IdPath, ctx: Writer) -> Response:
    """Archive (journeys are kept for their results); active enrolments exit."""
    service.archive_journey(ctx.session, actor=ctx.actor, journey_id=journey_id, clock=ctx.clock)
    return Response(status_code=204)


@router.post("/journeys/{journey_id}/activate", response_model=JourneyRead)
def activate(journey_id: IdPath, ctx: Writer) -> JourneyRead:
    return journey_read(service.activate_journey(ctx.session, actor=ctx.actor, journey_id=journey_id, clock=ctx.clock))


@router.post("/journeys/{journey_id}/pause", response_model=JourneyRead)
def pause(journey_id: IdPath, ctx: Writer) -> JourneyRead:
    return journey_read(service.pause_journey(ctx.session, actor=ctx.actor, journey_id=journey_id, clock=ctx.clock))


@router.post("/journeys/{journey_id}/archive", response_model=JourneyRead)
def archive(journey_id: IdPath, ctx: Writer) -> JourneyRead:
    return journey_read(service.archive_journey(ctx.session, actor=ctx.actor, journey_id=journey_id, clock=ctx.clock))


@router.get("/journeys/{journey_id}/enrolments", response_model=EnrolmentPage)
def enrolments(
    journey_id: IdPath,
    ctx: Reader,
    status: EnrolmentStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> EnrolmentPage:
    """Entries newest first; pass `next_cursor` back as `cursor` for the next page."""
    page = service.enrolments_page(ctx.session, ctx.actor, journey_id, status=status, cursor=cursor, limit=limit)
    return EnrolmentPage(items=[enrolment_read(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/journeys/{journey_id}/stats", response_model=JourneyStatsRead)
def stats(journey_id: IdPath, ctx: Reader) -> JourneyStatsRead:
    """Entries by status, goal exits, and per step: runs, outcomes, who is there, deliveries."""
    return stats_read(service.journey_stats(ctx.session, ctx.actor, journey_id))


@router.get("/staff-tasks", response_model=list[StaffTaskRead])
def staff_tasks(
    ctx: ApiCtx,
    staff_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    status: StaffTaskStatus | None = StaffTaskStatus.OPEN,
) -> list[StaffTaskRead]:
    """Tasks SOP steps created for staff (touch:read: anyone's; a staff member: their own)."""
    return [task_read(t) for t in service.list_tasks(ctx.session, ctx.actor, staff_id=staff_id, status=status)]


@router.post("/staff-tasks/{task_id}/done", response_model=StaffTaskRead)
def complete_task(task_id: IdPath, ctx: ApiCtx) -> StaffTaskRead:
    return task_read(service.complete_task(ctx.session, actor=ctx.actor, task_id=task_id, clock=ctx.clock))
