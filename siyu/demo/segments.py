"""The demo brand's segments (人群): the audiences an operator of 栖梧 keeps, with a month of history.

The story: the operator set the segments up 29 days ago, and the scheduler has refreshed them once
a day since. So the segments are created through the service with a clock at that moment, then,
day by day up to now, each is brought up to that day's moment as the daily refresh does: tracked
(and static) segments through `siyu.segments.service.tracking.refresh_segment`, which records who
entered and who left that day; the others are counted (`count_definition`) and the count recorded
as the day's size. Every point is the definition evaluated at its day's moment, so the relative
windows make the numbers move. The static snapshot of the high-value repeat buyers is taken on
双11 night when 双11 falls in the month, mid-month otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.demo.catalog import STORE_STAFF
from siyu.kit.clock import FrozenClock
from siyu.models import Job, JobStatus, Segment, Staff, Tag, TagGroup
from siyu.segments.definition import RELATIVE_OPS, parse_definition
from siyu.segments.query import count_definition
from siyu.segments.service.crud import SegmentInput, create_segment
from siyu.segments.service.static import snapshot_segment
from siyu.segments.service.tracking import RefreshResult, record_size, refresh_segment

HISTORY_DAYS = 30
"""Days of size history: today and the 29 before (the console's trend line shows 30)."""
HIGH_VALUE = "高价值复购客"
HOLDOUT_SEED = "demo-holdout"
SQLITE_CACHE_KIB = 64 * 1024
STORE = "SH01"
"""The store whose 导购 the store segment follows (its manager is a demo user)."""


@dataclass(frozen=True)
class DemoSegment:
    name: str
    description: str
    definition: dict[str, Any]
    tracked: bool = False


def segment_specs(*, high_value_id: int, store_staff_ids: list[int], style_tag_ids: list[int]) -> list[DemoSegment]:
    """The dynamic segments after the first (`HIGH_VALUE`, which the others may refer to)."""
    return [
        DemoSegment(
            "近30天活跃",
            "近 30 天浏览 H5 页面 3 次及以上",
            {"kind": "event", "type": "page.view", "op": "at_least", "value": 3, "window": {"last_days": 30}},
        ),
        DemoSegment(
            "沉睡待唤醒",
            "最近一单在 90 天前，但仍是导购好友：适合唤醒券和一对一关怀",
            {
                "all": [
                    {"kind": "order", "measure": "last_paid_at", "op": "more_than_ago", "value": 90},
                    {"kind": "relationship", "status": "active"},
                ]
            },
            tracked=True,
        ),
        DemoSegment(
            "7天内生日",
            "生日在未来 7 天内（含今天），生日礼 50 元券的发放对象",
            {"kind": "field", "field": "birthday", "op": "anniversary_within_next", "value": 7},
        ),
        DemoSegment(
            "删粉客户",
            "近 90 天主动删除导购的客户",
            {"kind": "relationship", "status": "removed", "removed_by": "customer", "window": {"last_days": 90}},
        ),
        DemoSegment(
            "买过外套未买针织衫",
            "近半年买过外套、从没买过针织衫：推荐针织内搭",
            {
                "all": [
                    {"kind": "purchase", "categories": ["外套"], "window": {"last_days": 180}},
                    {"kind": "purchase", "categories": ["针织衫"], "bought": False},
                ]
            },
        ),
        DemoSegment(
            "新客首单券对象",
            "近 7 天新加好友、还没下单的新客（不含高价值复购客）",
            {
                "all": [
                    {"kind": "field", "field": "lifecycle_stage", "op": "eq", "value": "new"},
                    {"kind": "relationship", "status": "active", "window": {"last_days": 7}},
                    {"kind": "segment", "segment_id": high_value_id, "member": False},
                ]
            },
        ),
        DemoSegment(
            "静安店通勤极简风好友",
            "静安嘉里中心店导购的好友中，偏好通勤或极简风格的客户：新品上架时一对一推荐",
            {
                "all": [
                    {"kind": "relationship", "status": "active", "staff_ids": store_staff_ids},
                    {"kind": "tag", "match": "any", "tag_ids": style_tag_ids},
                ]
            },
        ),
        DemoSegment(
            "10% 对照组",
            "固定 10% 的客户不参与营销活动，用来衡量活动的真实增量",
            {"kind": "sample", "percent": 10, "seed": HOLDOUT_SEED},
        ),
    ]


HIGH_VALUE_SPEC = DemoSegment(
    HIGH_VALUE,
    "近 365 天下单 2 次及以上且实付满 600 元",
    {
        "all": [
            {"kind": "order", "measure": "count", "op": "at_least", "value": 2, "window": {"last_days": 365}},
            {"kind": "order", "measure": "total_fen", "op": "gte", "value": 60_000, "window": {"last_days": 365}},
        ]
    },
    tracked=True,
)


def snapshot_moment(now: datetime, tz: ZoneInfo) -> tuple[str, datetime]:
    """The name and moment of the static snapshot: the end of the latest 双11 if it lies within the
    history, else the middle of the history (named by that local day)."""
    local = now.astimezone(tz)
    year = local.year if (local.month, local.day) > (11, 11) else local.year - 1
    double_eleven = datetime(year, 11, 11, 23, 59, 59, tzinfo=tz)
    if now - double_eleven < timedelta(days=HISTORY_DAYS - 1):
        return "双11 复购客快照", double_eleven
    middle = now - timedelta(days=HISTORY_DAYS // 2)
    day = middle.astimezone(tz)
    return f"{day.month}月{day.day}日 复购客快照", middle


def build_segments(session: Session, *, workspace_id: int, now: datetime, tz: ZoneInfo) -> list[Segment]:
    """Create the demo's segments with their month of daily refreshes; returns them, creation order."""
    with _roomy_sqlite_cache(session):
        return _build(session, workspace_id, now, tz)


@contextmanager
def _roomy_sqlite_cache(session: Session) -> Iterator[None]:
    """The month of history runs a few hundred queries over the same tables; SQLite's default page
    cache (2 MiB) would read their pages from the file again each time (a third of the time, in
    system calls). The connection gets its old cache size back afterwards."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    before = session.execute(text("PRAGMA cache_size")).scalar_one()
    session.execute(text(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}"))
    try:
        yield
    finally:
        session.execute(text(f"PRAGMA cache_size={int(before)}"))


def _build(session: Session, workspace_id: int, now: datetime, tz: ZoneInfo) -> list[Segment]:
    actor = Actor.system(workspace_id, label="siyu demo")
    start = now - timedelta(days=HISTORY_DAYS - 1)
    created = FrozenClock(start)
    high_value = create_segment(session, actor=actor, data=_input(HIGH_VALUE_SPEC), clock=created)
    specs = segment_specs(
        high_value_id=high_value.id,
        store_staff_ids=_store_staff(session, workspace_id),
        style_tag_ids=[_tag(session, workspace_id, "风格偏好", name) for name in ("通勤", "极简")],
    )
    segments = [high_value] + [create_segment(session, actor=actor, data=_input(s), clock=created) for s in specs]
    snapshot_name, snapshot_at = snapshot_moment(now, tz)
    counted = {s.id: parse_definition(s.definition) for s in segments if not s.is_tracked}  # validated on create
    constant: dict[int, int] = {}
    first_refresh: dict[int, RefreshResult] = {}
    snapshot: Segment | None = None
    for days_ago in range(HISTORY_DAYS - 1, -1, -1):
        at = now - timedelta(days=days_ago)
        if snapshot is None and snapshot_at <= at:
            local = snapshot_at.astimezone(tz)
            snapshot = snapshot_segment(
                session,
                actor=actor,
                segment_id=high_value.id,
                name=snapshot_name,
                description=f"{local:%Y-%m-%d %H:%M} 时的{HIGH_VALUE}（固定名单），复盘活动时与现在的人群对比",
                clock=FrozenClock(snapshot_at),
            )
            segments.append(snapshot)
        for segment in segments:
            node = counted.get(segment.id)
            if node is None:  # tracked or static: the scheduler's refresh, at that day's moment
                result = refresh_segment(session, segment_id=segment.id, clock=FrozenClock(at))
                if result is not None:
                    first_refresh.setdefault(segment.id, result)
                continue
            # Untracked: counted, as the daily refresh does; a definition that never reads "now"
            # counts the same every day, so it is counted once.
            size = constant.get(segment.id)
            if size is None:
                size = count_definition(session, workspace_id=workspace_id, definition=node, now=at, tz=tz)
                if not reads_now(segment.definition):
                    constant[segment.id] = size
            record_size(session, segment, size, at)
    _mark_first_refreshes_done(session, workspace_id, first_refresh, start)
    return segments


def reads_now(definition: Any) -> bool:
    """Whether evaluating the definition depends on the moment: a rolling window, a relative
    operator, or a reference to another segment (which might). Conservative: only definitions
    without any of these are treated as evaluating the same at every moment."""
    if isinstance(definition, list):
        return any(reads_now(item) for item in definition)
    if not isinstance(definition, dict):
        return False
    window = definition.get("window")
    if definition.get("kind") == "segment" or definition.get("op") in RELATIVE_OPS:
        return True
    if isinstance(window, dict) and "last_days" in window:
        return True
    return any(reads_now(value) for value in definition.values() if isinstance(value, dict | list))


def _input(spec: DemoSegment) -> SegmentInput:
    return SegmentInput(
        name=spec.name, definition=spec.definition, description=spec.description, is_tracked=spec.tracked
    )


def _store_staff(session: Session, workspace_id: int) -> list[int]:
    wecom_ids = [uid for _, uid in STORE_STAFF[STORE]]
    return sorted(
        session.scalars(select(Staff.id).where(Staff.workspace_id == workspace_id, Staff.wecom_user_id.in_(wecom_ids)))
    )


def _tag(session: Session, workspace_id: int, group: str, name: str) -> int:
    tag_id = session.scalar(
        select(Tag.id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(Tag.workspace_id == workspace_id, TagGroup.name == group, Tag.name == name)
    )
    assert tag_id is not None, f"the demo has no tag {group}/{name}"
    return tag_id


def _mark_first_refreshes_done(
    session: Session, workspace_id: int, first: dict[int, RefreshResult], start: datetime
) -> None:
    """Creating a tracked segment queues its first refresh; the history above already ran it at
    creation, so its job is recorded as done then (not left queued for a month)."""
    from siyu.segments.tasks import REFRESH_KIND  # as crud does: the tasks module sets up the broker

    jobs = session.scalars(
        select(Job).where(Job.workspace_id == workspace_id, Job.kind == REFRESH_KIND, Job.status == JobStatus.QUEUED)
    )
    for job in jobs:
        result = first.get(int(job.args.get("segment_id", 0)))
        if result is None:
            continue
        job.status = JobStatus.SUCCEEDED
        job.attempts = 1
        job.started_at = job.finished_at = start
        job.result = {"segments": 1, "entered": result.entered, "left": result.left, "failed": 0}
