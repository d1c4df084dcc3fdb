"""Staff behaviour data (`get_user_behavior_data`) into `StaffBehaviorDay`, one row per staff and day.

WeCom sums the figures over every userid of a call, so siyu asks one member per call (the API also
allows ≤ 100 userids and a span ≤ 30 days; siyu asks the window in spans of at most 30 days).
`stat_time` is the day's midnight China time (UTC+8): WeCom's days are China days whatever the
brand's zone, so the row's `day` is that instant in Asia/Shanghai, and siyu asks China days too.
A day fetched again is overwritten (WeCom finalises a day's figures the next day). The reply
percentage and average reply time are kept as WeCom reports them, also on days without chats
(WeCom gives no denominator; see siyu.analytics.performance.staff for how days are weighted).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.periods import utc_start
from siyu.integrations.wecom import status
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Staff, StaffBehaviorDay

MAX_SPAN_DAYS = 30
CHINA = ZoneInfo("Asia/Shanghai")
"""The zone of WeCom's `stat_time` days."""
DEFAULT_DAYS = 3
"""The daily job fetches the last three finished days, so a missed day is caught up."""


def fetch_behavior(
    session: Session,
    config: WecomConfig,
    clock: Clock,
    *,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, int]:
    """Fetch China-time days `start`..`end` (default: the last three finished days) for every active
    staff member with a WeCom userid. A member WeCom does not know is counted in "errors" and noted on
    the integration; a retryable error stops the fetch (`WecomError`, the job runs again)."""
    ws = config.workspace_id
    zone = CHINA
    today = clock.now().astimezone(zone).date()
    end = end or today - timedelta(days=1)
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidInput("start must not be after end", details={"field": "start"})
    client = client_for(config, secret="contact")
    staff = list(
        session.scalars(
            select(Staff).where(Staff.workspace_id == ws, Staff.is_active.is_(True), Staff.wecom_user_id.is_not(None))
        )
    )
    counts: dict[str, int] = defaultdict(int)
    for member in staff:
        span_start = start
        while span_start <= end:
            span_end = min(end, span_start + timedelta(days=MAX_SPAN_DAYS - 1))
            data = {
                "userid": [member.wecom_user_id],
                "start_time": int(utc_start(span_start, zone).timestamp()),
                "end_time": int(utc_start(span_end, zone).timestamp()),
            }
            try:
                answer = client.call("POST", "externalcontact/get_user_behavior_data", data=data)
            except WecomError as exc:
                if exc.retryable:
                    raise
                status.note_error(session, ws, exc, clock)
                counts["errors"] += 1
                break
            for item in answer.get("behavior_data") or []:
                _store(session, member, item, zone, clock)
                counts["days"] += 1
            span_start = span_end + timedelta(days=1)
        counts["staff"] += 1
    session.flush()
    return dict(counts)


def _store(session: Session, member: Staff, item: dict[str, Any], zone: Any, clock: Clock) -> None:
    day = datetime.fromtimestamp(int(item["stat_time"]), UTC).astimezone(zone).date()
    row = session.scalar(
        select(StaffBehaviorDay).where(StaffBehaviorDay.staff_id == member.id, StaffBehaviorDay.day == day)
    )
    if row is None:
        row = StaffBehaviorDay(workspace_id=member.workspace_id, staff_id=member.id, day=day)
        session.add(row)
    row.new_apply_cnt = int(item.get("new_apply_cnt") or 0)
    row.new_contact_cnt = int(item.get("new_contact_cnt") or 0)
    row.chat_cnt = int(item.get("chat_cnt") or 0)
    row.message_cnt = int(item.get("message_cnt") or 0)
    pct, avg = item.get("reply_percentage"), item.get("avg_reply_time")
    row.reply_percentage = float(pct) if pct is not None else None
    row.avg_reply_time = round(float(avg)) if avg is not None else None
    row.negative_feedback_cnt = int(item.get("negative_feedback_cnt") or 0)
    row.fetched_at = clock.now()
