"""Building the touch demo: accounts, policy, the three broadcasts, then sending and results."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.campaigns.broadcasts.schemas import BroadcastIn
from siyu.campaigns.broadcasts.service import audience_size, create_broadcast, submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.campaigns.results import simulate_engagement
from siyu.db import Database
from siyu.demo.catalog import USERS
from siyu.demo.segments import HIGH_VALUE
from siyu.demo.touch import library, outcomes
from siyu.kit.clock import Clock, FrozenClock
from siyu.messaging.policy import DEFAULT_CAPS, DEFAULT_PLATFORM_CAPS
from siyu.models import (
    AdapterKind,
    Broadcast,
    BroadcastStatus,
    ChannelAccount,
    ContentItem,
    Role,
    Segment,
    TouchPolicy,
    Workspace,
)
from siyu.workspaces.scope import bind_workspace

SANDBOX_WECOM = "沙箱（演示）"
SANDBOX_SMS = "短信（沙箱）"
SENT_DAYS_AGO = 6
"""The sent broadcast went out this many days ago at noon (brand time): most of its 7-day window is in."""


def build_touch(database: Database, *, clock: Clock, seed: int = 7) -> bool:
    """Add the touch demo to the demo brand; False (and nothing written) if it is there already
    or the brand is missing. Call after `build_demo`."""
    with database.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == "default"))
        if workspace is None or _has_touch(session, workspace.id):
            return False
        bind_workspace(session, workspace.id)
        setup = _setup(session, workspace, clock)
    sent_at = setup["send_clock"].now()
    dispatch(database, setup["send_clock"])
    with database.transaction() as session:
        bind_workspace(session, setup["workspace_id"])
        engaged_at = FrozenClock(min(sent_at + timedelta(days=2), clock.now()))
        simulate_engagement(
            session,
            workspace_id=setup["workspace_id"],
            source="broadcast",
            source_id=setup["sent_id"],
            clock=engaged_at,
            seed=seed,
        )
        outcomes.orders_after(session, setup["workspace_id"], setup["sent_id"], clock.now(), seed)
        outcomes.plan_job_done(session, setup["workspace_id"], setup["sent_id"], sent_at)
    return True


def _has_touch(session: Session, workspace_id: int) -> bool:
    return (
        session.scalar(
            select(ChannelAccount.id).where(
                ChannelAccount.workspace_id == workspace_id, ChannelAccount.name == SANDBOX_WECOM
            )
        )
        is not None
    )


def _setup(session: Session, workspace: Workspace, clock: Clock) -> dict[str, Any]:
    now = clock.now()
    tz = ZoneInfo(workspace.timezone)
    ws = workspace.id
    operator = next(u.name for u in USERS if u.role is Role.OPERATOR)
    actor = Actor.system(ws, label=operator)
    accounts = [
        ChannelAccount(
            workspace_id=ws,
            name=name,
            kind=AdapterKind.SANDBOX,
            settings={"consent_channel": channel},
            created_at=now,
            updated_at=now,
        )
        for name, channel in ((SANDBOX_WECOM, "wecom"), (SANDBOX_SMS, "sms"))
    ]
    session.add_all(accounts)
    session.add(
        TouchPolicy(
            workspace_id=ws,
            caps={k: dict(v) for k, v in DEFAULT_CAPS.items()},
            platform_caps={k: dict(v) for k, v in DEFAULT_PLATFORM_CAPS.items()},
            updated_at=now,
        )
    )
    contents = {
        name: ContentItem(
            workspace_id=ws,
            name=name,
            kind=kind,
            body=body,
            link_url=f"{library.SHOP}{path}" if path else None,
            tags=tags,
            is_marketing=marketing,
            created_at=now - timedelta(days=30),
            updated_at=now - timedelta(days=30),
            **extra,
        )
        for name, (tags, kind, body, path, marketing, extra) in library.CONTENT.items()
    }
    session.add_all(contents.values())
    session.flush()
    ids = {name: item.id for name, item in contents.items()}
    channel_ids = [a.id for a in accounts]
    segments = {s.name: s.id for s in session.scalars(select(Segment).where(Segment.workspace_id == ws))}
    local_now = now.astimezone(tz)
    send_at = datetime.combine(local_now.date() - timedelta(days=SENT_DAYS_AGO), time(12, 0), tz)
    send_clock = FrozenClock(send_at)
    sent = _broadcast(
        session,
        actor,
        FrozenClock(send_at - timedelta(hours=3)),
        name="冬装上新 · 高价值复购客",
        segment_id=segments[HIGH_VALUE],
        channel_account_ids=channel_ids,
        variants=[{"key": "A", "content_id": ids["复购提醒"]}, {"key": "B", "content_id": ids["会员日"]}],
        holdout_pct=10,
        goal={"type": "order", "days": 7},
        brief={
            "objective": "老客冬装复购，7 天内下单",
            "audience": "高价值复购客（近一年 2 单以上且满 600 元）",
            "hook": "老客专享 9 折 / 会员日满减",
            "mechanism": "A/B 两版文案，10% 对照组衡量真实增量",
            "path": "企业微信消息 → 专属短链 → 小程序下单",
        },
    )
    submit_broadcast(session, actor=actor, broadcast_id=sent.id, clock=send_clock)
    scheduled = _broadcast(
        session,
        actor,
        clock,
        name="会员日提醒 · 近30天活跃",
        segment_id=segments["近30天活跃"],
        channel_account_ids=channel_ids,
        variants=[{"key": "A", "content_id": ids["会员日"]}],
        holdout_pct=10,
        goal={"type": "order", "days": 3},
        brief={"objective": "会员日到店/下单", "audience": "近 30 天活跃", "hook": "满 500 减 80"},
        scheduled_at=datetime.combine(local_now.date() + timedelta(days=1), time(20, 0), tz),
    )
    submit_broadcast(session, actor=actor, broadcast_id=scheduled.id, clock=clock)
    pending = _broadcast(
        session,
        actor,
        clock,
        name="大促预热 · 沉睡唤醒",
        segment_id=segments["沉睡待唤醒"],
        channel_account_ids=channel_ids,
        variants=[{"key": "A", "content_id": ids["双11预热"]}],
        holdout_pct=10,
        goal={"type": "click", "days": 3},
        brief={"objective": "唤醒 90 天未下单的好友", "audience": "沉睡待唤醒", "hook": "定金膨胀"},
    )
    # Waiting for the admin: as a submission over the approval threshold by the operator leaves it.
    pending.status, pending.requested_by = BroadcastStatus.PENDING_APPROVAL, operator
    pending.audience_size = audience_size(session, pending, clock)
    library.add_journeys(session, ws, ids, channel_ids, now)
    library.add_scripts(session, ws, now)
    library.add_moments(session, ws, ids, local_now, tz, now)
    library.add_group_calendar(session, ws, ids, channel_ids[0], now)
    return {"workspace_id": ws, "sent_id": sent.id, "send_clock": send_clock}


def _broadcast(session: Session, actor: Actor, clock: Clock, **fields: Any) -> Broadcast:
    """A draft through the service, as the console's wizard saves one."""
    return create_broadcast(session, actor=actor, data=BroadcastIn.model_validate(fields), clock=clock)
