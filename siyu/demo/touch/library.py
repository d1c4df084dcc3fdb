"""The touch demo's library: content, scripts, the SOP journeys, moments and the group calendar."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.models import (
    CommunityGroup,
    ContentKind,
    CustomerEvent,
    GroupCalendar,
    GroupCalendarEntry,
    Journey,
    JourneyStatus,
    MomentPost,
    Persona,
    Script,
    Slot,
    Staff,
)

SHOP = "https://qiwu.example.com/h5"
SLOT_TIMES = {Slot.MORNING: "08:30", Slot.NOON: "12:00", Slot.EVENING: "20:00"}

# name → (tags, kind, body, link path, is_marketing, extra fields)
CONTENT: dict[str, tuple[list[str], ContentKind, str, str | None, bool, dict[str, Any]]] = {
    "新客欢迎": (
        ["新客欢迎", "SOP"],
        ContentKind.TEXT,
        "{{ name }}你好呀～我是栖梧的穿搭顾问，很高兴认识你！新人专享 50 元券已放进你的账户，穿搭问题随时问我。",
        None,
        False,
        {},
    ),
    "复购提醒": (
        ["复购提醒"],
        ContentKind.TEXT,
        "{{ name }}，上次那件穿着还喜欢吗？冬装新品已上架，老客专享 9 折：{{ link }}",
        "/new-arrivals",
        True,
        {},
    ),
    "会员日": (
        ["会员日"],
        ContentKind.LINK,
        "每月 18 日是栖梧会员日：全场满 500 减 80，积分双倍，等你来逛～",
        "/member-day",
        True,
        {"title": "栖梧会员日 · 满 500 减 80", "description": "积分双倍，仅限会员"},
    ),
    "生日礼": (
        ["生日礼"],
        ContentKind.TEXT,
        "{{ name }}，生日快乐！栖梧为你准备了 50 元生日礼券，7 天内有效，祝新的一岁更美。",
        None,
        True,
        {},
    ),
    "双11预热": (
        ["双11预热", "大促"],
        ContentKind.TEXT,
        "双11 预售开启：定金 50 抵 150，前 1 小时付尾款再送真丝发圈。提前加购不迷路 {{ link }}",
        "/double-11",
        True,
        {},
    ),
    "售后关怀": (
        ["售后关怀"],
        ContentKind.TEXT,
        "{{ name }}，衣服收到了吗？羊毛针织请平铺晾干，穿着有任何问题随时找我～",
        None,
        False,
        {},
    ),
    "朋友圈·生活": (
        ["朋友圈", "生活"],
        ContentKind.IMAGE,
        "周末去了趟安福路，银杏黄得刚刚好。秋天就该穿得松弛一点。",
        None,
        False,
        {"media_url": "https://qiwu.example.com/moments/anfu-road.jpg"},
    ),
    "朋友圈·产品": (
        ["朋友圈", "产品"],
        ContentKind.IMAGE,
        "新到的双面羊绒大衣，上身轻、不压肩，杏色和燕麦色都很显气色。想看细节的姐妹私聊我～",
        None,
        True,
        {"media_url": "https://qiwu.example.com/moments/cashmere-coat.jpg"},
    ),
}

SCRIPTS = (
    ("greeting", "新好友破冰", "{{ name }}你好，我是栖梧的{{ staff_name }}，平时穿通勤还是休闲多一些？我帮你搭几套～"),
    ("greeting", "门店加微", "{{ name }}，谢谢今天来店里试穿！我把你试过的几件整理好发你，想要随时说。"),
    ("follow_up", "试穿回访", "{{ name }}，上次看中的那件大衣补货了，你的尺码我先帮你留着，明天前回复就好。"),
    ("objection", "价格异议", "理解的～这件是双面羊绒，手工缝边，能穿好几年。会员日还能叠满 500 减 80，更划算。"),
    ("after_sale", "尺码不合适换货", "{{ name }}别担心，7 天内可免费换码，我这边直接帮你登记，快递小哥上门取件。"),
)


def add_journeys(session: Session, ws: int, ids: dict[str, int], channel_ids: list[int], now: datetime) -> None:
    # Only adds after activation enrol: the engine starts from the newest timeline row.
    watermark = session.scalar(select(func.max(CustomerEvent.id)).where(CustomerEvent.workspace_id == ws)) or 0
    session.add_all(
        [
            Journey(
                workspace_id=ws,
                name="新客 7 天 SOP",
                status=JourneyStatus.ACTIVE,
                trigger={"type": "relationship_added"},
                steps=[
                    {"id": "s1", "type": "send", "content_id": ids["新客欢迎"]},
                    {"id": "s2", "type": "wait", "days": 3},
                    {
                        "id": "s3",
                        "type": "branch",
                        "condition": {"event_type": "order.paid", "since_enrolment": True},
                        "then": "s5",
                        "else": "s4",
                    },
                    {"id": "s4", "type": "send", "content_id": ids["复购提醒"]},
                    {"id": "s5", "type": "exit"},
                ],
                goal={"type": "order"},
                channel_account_ids=channel_ids,
                watermark=watermark,
                activated_at=now,
                created_by="私域运营 · 苏苏",
                created_at=now - timedelta(days=1),
                updated_at=now,
            ),
            Journey(
                workspace_id=ws,
                name="生日关怀",
                status=JourneyStatus.DRAFT,
                trigger={"type": "birthday", "days_before": 3},
                steps=[
                    {"id": "s1", "type": "send", "content_id": ids["生日礼"]},
                    {"id": "s2", "type": "wait", "days": 7},
                    {"id": "s3", "type": "exit"},
                ],
                goal={"type": "order"},
                channel_account_ids=channel_ids,
                created_by="私域运营 · 苏苏",
                created_at=now,
                updated_at=now,
            ),
        ]
    )


def add_scripts(session: Session, ws: int, now: datetime) -> None:
    session.add_all(
        Script(workspace_id=ws, stage=stage, title=title, body=body, tags=[title], created_at=now, updated_at=now)
        for stage, title, body in SCRIPTS
    )


def add_moments(
    session: Session, ws: int, ids: dict[str, int], local_now: datetime, tz: ZoneInfo, now: datetime
) -> None:
    """This week's moments of the community host's persona: every morning, and three evenings;
    two of the ten posts (20 %) sell something."""
    staff_id = session.scalar(select(Staff.id).where(Staff.workspace_id == ws, Staff.wecom_user_id == "QiwuIvy"))
    persona = Persona(
        workspace_id=ws,
        staff_id=staff_id,
        name="Ivy · 栖梧穿搭主理人",
        signature="每天一套通勤穿搭 | 栖梧社群主理人",
        tone="像朋友一样分享，真诚、不催单",
        created_at=now - timedelta(days=14),
    )
    session.add(persona)
    session.flush()
    monday: date = local_now.date() - timedelta(days=local_now.isoweekday() - 1)
    plan = [(day, Slot.MORNING, False) for day in range(7)]
    plan += [(0, Slot.EVENING, False), (2, Slot.EVENING, True), (4, Slot.EVENING, True)]
    for day, slot, marketing in sorted(plan, key=lambda p: (p[0], p[1] != Slot.MORNING)):
        post_date = monday + timedelta(days=day)
        hour, minute = map(int, SLOT_TIMES[slot].split(":"))
        at = datetime.combine(post_date, time(hour, minute), tz)
        published = at <= now
        session.add(
            MomentPost(
                workspace_id=ws,
                persona_id=persona.id,
                post_date=post_date,
                slot=slot,
                content_id=ids["朋友圈·产品" if marketing else "朋友圈·生活"],
                is_marketing=marketing,
                status="published" if published else "planned",
                published_at=at if published else None,
                likes=(17 + 7 * day + (9 if slot == Slot.EVENING else 0)) if published else 0,
                comments=(2 + day % 3) if published else 0,
                created_at=now - timedelta(days=7),
            )
        )


def add_group_calendar(session: Session, ws: int, ids: dict[str, int], account_id: int, now: datetime) -> None:
    groups = list(session.scalars(select(CommunityGroup.id).where(CommunityGroup.workspace_id == ws)))
    if not groups:
        return
    calendar = GroupCalendar(
        workspace_id=ws,
        name="福利群 · 早中晚 SOP",
        group_ids=sorted(groups),
        channel_account_id=account_id,
        slot_times={str(slot): at for slot, at in SLOT_TIMES.items()},
        created_at=now,
    )
    session.add(calendar)
    session.flush()
    session.add_all(
        GroupCalendarEntry(workspace_id=ws, calendar_id=calendar.id, weekdays=days, slot=slot, content_id=ids[name])
        for days, slot, name in (
            ([1, 2, 3, 4, 5, 6, 7], Slot.MORNING, "朋友圈·生活"),
            ([2, 4], Slot.NOON, "朋友圈·产品"),
            ([3], Slot.EVENING, "会员日"),
        )
    )
