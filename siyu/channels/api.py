"""HTTP API of channels: settings, cost entries and metrics (thin handlers over the services)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from siyu.auth.permissions import Scope
from siyu.channels import metrics, service
from siyu.channels.attribution import Attribution
from siyu.channels.schemas import (
    ChannelIn,
    ChannelPatch,
    ChannelRead,
    ChannelReportRead,
    CostEntryIn,
    CostEntryPage,
    CostEntryRead,
    ReportRead,
    channel_read,
    channel_report_read,
    cost_entry_read,
    report_read,
)
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["channels"])
Reader = Annotated[Ctx, Depends(require(Scope.ACQUISITION_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ACQUISITION_WRITE))]

DateFrom = Annotated[
    date | None, Query(alias="from", description="First day (brand time zone); default 30 days before `to`.")
]
DateTo = Annotated[date | None, Query(alias="to", description="Last day, inclusive; default today.")]
Window = Annotated[
    int,
    Query(ge=1, le=metrics.MAX_WINDOW_DAYS, description="Days after an add within which its orders are credited."),
]


def _report(
    ctx: Ctx,
    date_from: date | None,
    date_to: date | None,
    attribution: Attribution,
    window_days: int,
    channel_ids: list[int] | None = None,
) -> metrics.ChannelReport:
    start, end = metrics.resolve_range(
        ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, date_from=date_from, date_to=date_to
    )
    return metrics.channel_report(
        ctx.session,
        actor=ctx.actor,
        date_from=start,
        date_to=end,
        clock=ctx.clock,
        attribution=attribution,
        window_days=window_days,
        channel_ids=channel_ids,
    )


@router.get("/channels/metrics", response_model=ReportRead)
def all_metrics(
    ctx: Reader,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    attribution: Attribution = Attribution.FIRST_TOUCH,
    window_days: Window = metrics.DEFAULT_WINDOW_DAYS,
) -> ReportRead:
    """Every channel's metrics over [from, to], the workspace total row and daily totals for a chart."""
    return report_read(_report(ctx, date_from, date_to, attribution, window_days))


@router.get("/channels", response_model=list[ChannelRead])
def list_channels(ctx: Reader, include_archived: bool = False) -> list[ChannelRead]:
    return [
        channel_read(c) for c in service.list_channels(ctx.session, actor=ctx.actor, include_archived=include_archived)
    ]


@router.post("/channels", response_model=ChannelRead, status_code=201)
def create_channel(body: ChannelIn, ctx: Writer) -> ChannelRead:
    fields = service.ChannelFields(**body.model_dump())
    return channel_read(service.create_channel(ctx.session, actor=ctx.actor, fields=fields, clock=ctx.clock))


@router.get("/channels/{channel_id}", response_model=ChannelRead)
def get_channel(channel_id: IdPath, ctx: Reader) -> ChannelRead:
    return channel_read(service.get_channel(ctx.session, actor=ctx.actor, channel_id=channel_id))


@router.patch("/channels/{channel_id}", response_model=ChannelRead)
def update_channel(channel_id: IdPath, body: ChannelPatch, ctx: Writer) -> ChannelRead:
    """Change settings; `is_archived` archives or restores the channel."""
    changes = body.model_dump(exclude_unset=True)
    archived = changes.pop("is_archived", None)
    channel = service.update_channel(
        ctx.session, actor=ctx.actor, channel_id=channel_id, changes=changes, clock=ctx.clock
    )
    if archived is not None:
        channel = service.set_archived(
            ctx.session, actor=ctx.actor, channel_id=channel_id, archived=archived, clock=ctx.clock
        )
    return channel_read(channel)


@router.delete("/channels/{channel_id}", response_model=ChannelRead)
def archive_channel(channel_id: IdPath, ctx: Writer) -> ChannelRead:
    """Archive the channel: its history and metrics stay, it leaves lists and forms."""
    return channel_read(
        service.set_archived(ctx.session, actor=ctx.actor, channel_id=channel_id, archived=True, clock=ctx.clock)
    )


@router.get("/channels/{channel_id}/costs", response_model=CostEntryPage)
def list_costs(
    channel_id: IdPath, ctx: Reader, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 100
) -> CostEntryPage:
    page = service.cost_entries(ctx.session, actor=ctx.actor, channel_id=channel_id, cursor=cursor, limit=limit)
    return CostEntryPage(items=[cost_entry_read(e) for e in page.items], next_cursor=page.next_cursor)


@router.post("/channels/{channel_id}/costs", response_model=CostEntryRead, status_code=201)
def add_cost(channel_id: IdPath, body: CostEntryIn, ctx: Writer) -> CostEntryRead:
    entry = service.add_cost_entry(
        ctx.session,
        actor=ctx.actor,
        channel_id=channel_id,
        spent_on=body.spent_on,
        amount_fen=body.amount_fen,
        exposures=body.exposures,
        note=body.note,
        clock=ctx.clock,
    )
    return cost_entry_read(entry)


@router.delete("/channels/{channel_id}/costs/{entry_id}", status_code=204)
def delete_cost(channel_id: IdPath, entry_id: IdPath, ctx: Writer) -> None:
    service.delete_cost_entry(ctx.session, actor=ctx.actor, channel_id=channel_id, entry_id=entry_id, clock=ctx.clock)


@router.get("/channels/{channel_id}/metrics", response_model=ChannelReportRead)
def channel_metrics(
    channel_id: IdPath,
    ctx: Reader,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    attribution: Attribution = Attribution.FIRST_TOUCH,
    window_days: Window = metrics.DEFAULT_WINDOW_DAYS,
) -> ChannelReportRead:
    """One channel's metrics over [from, to] and per day."""
    service.get_channel(ctx.session, actor=ctx.actor, channel_id=channel_id)
    return channel_report_read(_report(ctx, date_from, date_to, attribution, window_days, [channel_id]))
