"""Rows the channel metrics read, written directly (live codes and short links have their own services)."""

from __future__ import annotations

import itertools
from datetime import date, datetime

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import (
    Channel,
    ChannelCostEntry,
    Customer,
    LiveCode,
    LiveCodeKind,
    LiveCodeScan,
    Relationship,
    ShortLink,
    ShortLinkClick,
    Workspace,
)

_seq = itertools.count(1)


def new_customer(db: Session, *, workspace: Workspace, clock: Clock) -> Customer:
    """A bare customer row (no identities): metrics only need the id."""
    customer = Customer(
        workspace_id=workspace.id, name=f"客户{next(_seq)}", created_at=clock.now(), updated_at=clock.now()
    )
    db.add(customer)
    db.flush()
    return customer


def add_edge(
    db: Session,
    *,
    customer: Customer,
    staff_id: int,
    added_at: datetime,
    channel: Channel | None = None,
    removed_at: datetime | None = None,
    removed_by: str | None = None,
) -> Relationship:
    edge = Relationship(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        staff_id=staff_id,
        added_at=added_at,
        channel_id=channel.id if channel else None,
        removed_at=removed_at,
        removed_by=removed_by,
    )
    db.add(edge)
    db.flush()
    return edge


def make_cost(
    db: Session,
    *,
    channel: Channel,
    spent_on: date,
    amount_fen: int,
    clock: Clock,
    exposures: int | None = None,
    note: str | None = None,
) -> ChannelCostEntry:
    entry = ChannelCostEntry(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        spent_on=spent_on,
        amount_fen=amount_fen,
        exposures=exposures,
        note=note,
        created_at=clock.now(),
    )
    db.add(entry)
    db.flush()
    return entry


def make_live_code(db: Session, *, channel: Channel | None, workspace: Workspace, clock: Clock) -> LiveCode:
    code = LiveCode(
        workspace_id=workspace.id,
        slug=f"lc{next(_seq)}",
        name="包裹卡活码",
        kind=LiveCodeKind.STAFF,
        channel_id=channel.id if channel else None,
        created_at=clock.now(),
    )
    db.add(code)
    db.flush()
    return code


def make_scans(db: Session, *, code: LiveCode, at: datetime, count: int = 1) -> None:
    for _ in range(count):
        db.add(
            LiveCodeScan(
                workspace_id=code.workspace_id,
                live_code_id=code.id,
                channel_id=code.channel_id,
                visitor_id=f"v{next(_seq)}",
                outcome="routed",
                scanned_at=at,
            )
        )
    db.flush()


def make_link(
    db: Session, *, workspace: Workspace, clock: Clock, channel: Channel | None, parent: ShortLink | None = None
) -> ShortLink:
    link = ShortLink(
        workspace_id=workspace.id,
        slug=f"s{next(_seq)}",
        target_url="https://shop.example.com/",
        channel_id=channel.id if channel else None,
        parent_id=parent.id if parent else None,
        created_at=clock.now(),
    )
    db.add(link)
    db.flush()
    return link


def make_clicks(db: Session, *, link: ShortLink, at: datetime, count: int = 1) -> None:
    for _ in range(count):
        db.add(
            ShortLinkClick(
                workspace_id=link.workspace_id,
                link_id=link.id,
                campaign_link_id=link.parent_id or link.id,
                visitor_id=f"v{next(_seq)}",
                clicked_at=at,
            )
        )
    db.flush()
