"""Click statistics: by brand-local day, totals, unique visitors and customers, per variant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import ShortLinkClick, Workspace
from siyu.shortlinks import service
from siyu.shortlinks.stats import link_stats
from tests.factories import actor_for, make_customer, make_experiment

TARGET = "https://shop.example.com/"


def _click(
    db: Session, *, workspace_id: int, link_id: int, campaign_id: int, at: datetime, visitor: str, **extra: object
) -> None:
    db.add(
        ShortLinkClick(
            workspace_id=workspace_id,
            link_id=link_id,
            campaign_link_id=campaign_id,
            visitor_id=visitor,
            clicked_at=at,
            **extra,
        )
    )
    db.flush()


def test_stats_count_clicks_by_shanghai_day_with_recipient_links_and_variants(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a campaign link running an experiment, a recipient link, and clicks around midnight Shanghai
    actor = actor_for(workspace)
    experiment = make_experiment(db, workspace=workspace, clock=clock)
    link = service.create_link(db, actor=actor, target_url=TARGET, experiment_id=experiment.id, clock=clock)
    other = service.create_link(db, actor=actor, target_url=TARGET, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    child = service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=[customer], clock=clock)[
        customer
    ]
    ws = workspace.id
    # 2026-11-22T15:59Z is 23:59 on the 22nd in Shanghai; 16:00Z is 00:00 on the 23rd
    _click(
        db,
        workspace_id=ws,
        link_id=link.id,
        campaign_id=link.id,
        at=datetime(2026, 11, 22, 15, 59, tzinfo=UTC),
        visitor="v1",
        variant="A",
    )
    _click(
        db,
        workspace_id=ws,
        link_id=link.id,
        campaign_id=link.id,
        at=datetime(2026, 11, 22, 16, 0, tzinfo=UTC),
        visitor="v1",
        variant="A",
    )
    _click(
        db,
        workspace_id=ws,
        link_id=link.id,
        campaign_id=link.id,
        at=datetime(2026, 11, 23, 1, 0, tzinfo=UTC),
        visitor="v2",
        variant="B",
    )
    _click(
        db,
        workspace_id=ws,
        link_id=child.id,
        campaign_id=link.id,
        at=datetime(2026, 11, 23, 1, 30, tzinfo=UTC),
        visitor="v3",
        variant="B",
        customer_id=customer,
    )
    _click(
        db,
        workspace_id=ws,
        link_id=child.id,
        campaign_id=link.id,
        at=datetime(2026, 11, 23, 1, 45, tzinfo=UTC),
        visitor="v3",
        variant="B",
        customer_id=customer,
    )
    _click(db, workspace_id=ws, link_id=other.id, campaign_id=other.id, at=clock.now(), visitor="v9")
    # long ago: outside the chart, still in the totals
    _click(db, workspace_id=ws, link_id=link.id, campaign_id=link.id, at=clock.now() - timedelta(days=40), visitor="v4")
    # when the stats are read for the last 7 days
    stats = link_stats(db, workspace_id=ws, link_id=link.id, clock=clock, days=7)
    # then
    assert (stats.total_clicks, stats.unique_visitors, stats.unique_customers, stats.recipients) == (6, 4, 1, 1)
    assert [(d.day, d.clicks, d.unique_visitors) for d in stats.by_day] == [
        (date(2026, 11, 17), 0, 0),
        (date(2026, 11, 18), 0, 0),
        (date(2026, 11, 19), 0, 0),
        (date(2026, 11, 20), 0, 0),
        (date(2026, 11, 21), 0, 0),
        (date(2026, 11, 22), 1, 1),
        (date(2026, 11, 23), 4, 3),
    ]
    assert [(v.key, v.name, v.clicks, v.unique_visitors, v.unique_customers) for v in stats.by_variant] == [
        ("A", "方案 A", 2, 1, 0),
        ("B", "方案 B", 3, 2, 1),
    ]
    # the recipient link reports its campaign's numbers
    assert link_stats(db, workspace_id=ws, link_id=child.id, clock=clock, days=7).total_clicks == 6


def test_stats_of_a_link_without_clicks_are_zeros(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    link = service.create_link(db, actor=actor_for(workspace), target_url=TARGET, clock=clock)
    stats = link_stats(db, workspace_id=workspace.id, link_id=link.id, clock=clock)
    assert (stats.total_clicks, stats.unique_visitors, stats.unique_customers, stats.recipients) == (0, 0, 0, 0)
    assert len(stats.by_day) == 30 and stats.by_day[-1].day == date(2026, 11, 23)
    assert sum(d.clicks for d in stats.by_day) == 0
    assert stats.by_variant == []
