"""Fake `externalcontact/get_user_behavior_data`: deterministic synthetic figures per member and day.

As documented: `userid` ≤ 100 (or `partyid`), `start_time`/`end_time` epoch seconds, span ≤ 30 days,
at most 180 days back; figures are summed over the given members, one entry per day (`stat_time`
= the day's 00:00 China time). Tests may pin a day's figures in `corp.table("behavior")["userid|YYYY-MM-DD"]`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError

CHINA = timezone(timedelta(hours=8))
MAX_USERIDS = 100
MAX_SPAN_S = 30 * 86400
MAX_BACK_S = 180 * 86400


def figures(corp: FakeCorp, userid: str, day: str) -> dict[str, Any]:
    """One member's day: pinned in the "behavior" table, else derived from a hash of (userid, day)."""
    pinned = corp.table("behavior").get(f"{userid}|{day}")
    if pinned is not None:
        return dict(pinned)
    h = hashlib.sha256(f"{userid}|{day}".encode()).digest()
    chats = 5 + h[0] % 20
    return {
        "new_apply_cnt": h[1] % 5,
        "new_contact_cnt": h[2] % 8,
        "chat_cnt": chats,
        "message_cnt": chats * (2 + h[3] % 6),
        "reply_percentage": round(60 + (h[4] % 400) / 10, 1),
        "avg_reply_time": 1 + h[5] % 30,
        "negative_feedback_cnt": h[6] % 2,
    }


@api("externalcontact/get_user_behavior_data")
def get_user_behavior_data(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    userids = call.arg("userid") or []
    if not isinstance(userids, list) or not userids or len(userids) > MAX_USERIDS:
        raise FakeError(40058, f"userid must hold 1..{MAX_USERIDS} userids")
    for u in userids:
        if u not in corp.users:
            raise FakeError(60111, f"userid not found: {u}")
    start, end = int(call.require("start_time")), int(call.require("end_time"))
    if end < start or end - start > MAX_SPAN_S:
        raise FakeError(40058, "the span is at most 30 days")
    if start < corp.now() - MAX_BACK_S:
        raise FakeError(40058, "start_time is at most 180 days back")
    rows = []
    day = datetime.fromtimestamp(start, CHINA).date()
    last = datetime.fromtimestamp(end, CHINA).date()
    while day <= last:
        per = [figures(corp, u, day.isoformat()) for u in userids]
        total: dict[str, Any] = {
            k: sum(p[k] for p in per) for k in per[0] if k not in ("reply_percentage", "avg_reply_time")
        }
        total["reply_percentage"] = round(sum(p["reply_percentage"] for p in per) / len(per), 1)
        total["avg_reply_time"] = round(sum(p["avg_reply_time"] for p in per) / len(per))
        stat = datetime(day.year, day.month, day.day, tzinfo=CHINA).astimezone(UTC)
        rows.append({"stat_time": int(stat.timestamp()), **total})
        day += timedelta(days=1)
    return {"behavior_data": rows}
