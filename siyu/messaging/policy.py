"""The delivery policy as pure functions: calendar periods, quiet hours, caps and deduplication.

`admission.py` applies them under row locks; keeping the arithmetic pure lets property tests
check it against every calendar and cap the generators can think of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from siyu.models import Priority, SuppressionReason

PERIODS = ("day", "week", "month")
ALL = "all"
"""The scope of the global caps (every channel together)."""
DEFAULT_CAPS: dict[str, dict[str, int]] = {ALL: {"day": 2, "week": 5, "month": 12}}
DEFAULT_PLATFORM_CAPS: dict[str, dict[str, int]] = {"wecom_customer": {"month": 4}}
"""WeCom let a customer receive at most four mass messages a month when this was written; the
rule has changed before, so it is a setting."""


SMS = "sms"
"""The scope of caps over every SMS provider together (Aliyun and Tencent count as one channel)."""


def scopes_of(channel: str) -> tuple[str, ...]:
    """The cap scopes a send on `channel` (an adapter kind) counts against."""
    return (ALL, channel, SMS) if channel.startswith("sms_") else (ALL, channel)


def period_keys(local: datetime) -> dict[str, str]:
    """The brand-calendar period keys a send at local time `local` falls in."""
    iso = local.isocalendar()
    return {
        "day": f"d{local.date().isoformat()}",
        "week": f"w{iso.year}-{iso.week:02d}",
        "month": f"m{local.year}-{local.month:02d}",
    }


def parse_hhmm(value: str) -> time:
    """ "21:00" → time(21, 0); raises ValueError for anything else."""
    hours, _, minutes = value.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"expected HH:MM, got {value!r}")
    return time(int(hours), int(minutes))


def in_quiet_hours(local: datetime, start: time, end: time) -> bool:
    """Is local wall-clock time inside [start, end)? The window may cross midnight; start == end is none."""
    now = local.time().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end


def quiet_hours_end(local: datetime, start: time, end: time) -> datetime:
    """The first moment at or after `local` outside quiet hours (`local` itself when outside)."""
    if not in_quiet_hours(local, start, end):
        return local
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


@dataclass(frozen=True)
class PolicyConfig:
    """The caps and windows in force for a workspace (a `TouchPolicy` row or the defaults)."""

    tz: ZoneInfo
    caps: dict[str, dict[str, int]] = field(default_factory=lambda: dict(DEFAULT_CAPS))
    platform_caps: dict[str, dict[str, int]] = field(default_factory=lambda: dict(DEFAULT_PLATFORM_CAPS))
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)
    dedup_days: int = 7


@dataclass(frozen=True)
class Request:
    """One delivery asking to be admitted for one customer on one channel."""

    channel: str
    priority: int
    send_at: datetime
    """When it would go out (UTC), before quiet hours move it."""
    content_hash: str | None
    hold_quiet_hours: bool = True


@dataclass(frozen=True)
class Decision:
    admitted: bool
    reason: SuppressionReason | None
    not_before: datetime
    """The send time after quiet hours (UTC)."""


def decide(config: PolicyConfig, counts: dict[str, Any], recent: dict[str, Any], request: Request) -> Decision:
    """Admit or suppress `request` given the customer's current counters; mutates `counts` and
    `recent` in place when admitted, so a batch of requests for one customer sees its own effect.

    Order: quiet hours (the send time decides which day counts), then deduplication, then the
    platform cap of the channel, then the brand's caps. Transactional messages skip all of it
    and are not counted against marketing caps.
    """
    if request.priority == Priority.TRANSACTIONAL:
        return Decision(True, None, request.send_at)
    send_at = request.send_at
    local = send_at.astimezone(config.tz)
    if in_quiet_hours(local, config.quiet_start, config.quiet_end):
        if not request.hold_quiet_hours:
            return Decision(False, SuppressionReason.QUIET_HOURS, send_at)
        local = quiet_hours_end(local, config.quiet_start, config.quiet_end)
        send_at = local.astimezone(send_at.tzinfo)
    if request.content_hash and config.dedup_days > 0:
        last = recent.get(request.content_hash)
        if last is not None and datetime.fromisoformat(last) > send_at - timedelta(days=config.dedup_days):
            return Decision(False, SuppressionReason.DUPLICATE, send_at)
    keys = period_keys(local)
    checks: list[tuple[str, str, int, SuppressionReason]] = []
    for period, limit in config.platform_caps.get(request.channel, {}).items():
        checks.append((keys[period], f"platform:{request.channel}", limit, SuppressionReason.PLATFORM_CAPPED))
    for scope in scopes_of(request.channel):
        for period, limit in config.caps.get(scope, {}).items():
            checks.append((keys[period], scope, limit, SuppressionReason.CAPPED))
    for key, scope, limit, reason in checks:
        if counts.get(key, {}).get(scope, 0) >= limit:
            return Decision(False, reason, send_at)
    for key, scope, _limit, _reason in checks:
        bucket = counts.setdefault(key, {})
        bucket[scope] = bucket.get(scope, 0) + 1
    if request.content_hash:
        recent[request.content_hash] = send_at.isoformat()
    return Decision(True, None, send_at)


def release(config: PolicyConfig, counts: dict[str, Any], channel: str, not_before: datetime) -> None:
    """Give back the cap slots a delivery took (it failed or the provider refused it)."""
    keys = period_keys(not_before.astimezone(config.tz))
    scopes = [(p, f"platform:{channel}") for p in config.platform_caps.get(channel, {})]
    scopes += [(p, s) for s in scopes_of(channel) for p in config.caps.get(s, {})]
    for period, scope in scopes:
        key = keys[period]
        bucket = counts.get(key)
        if bucket and bucket.get(scope, 0) > 0:
            bucket[scope] -= 1
            if bucket[scope] == 0:  # keep states small: a slot given back leaves no trace
                del bucket[scope]
            if not bucket:
                del counts[key]


def prune(counts: dict[str, Any], recent: dict[str, Any], now: datetime, config: PolicyConfig) -> None:
    """Drop counters of periods that ended and content older than the dedup window (keeps rows small)."""
    current = {key[0]: key for key in period_keys(now.astimezone(config.tz)).values()}
    for key in list(counts):
        # Keys of one kind sort by date ("d2026-11-23", "w2026-48", "m2026-11"); only past periods
        # of the same kind go — a key for a future day (a held send) stays.
        if key[:1] in current and key < current[key[:1]]:
            del counts[key]
    horizon = now - timedelta(days=max(config.dedup_days, 0))
    for content_hash, at in list(recent.items()):
        if datetime.fromisoformat(at) <= horizon:
            del recent[content_hash]
