"""Property tests of `siyu.messaging.policy` against a reference model.

The model keeps the list of admitted sends and counts them per local day, ISO week and month and
per scope from scratch; the policy keeps running counters. For any policy and any sequence of
requests both must reach the same decisions, and no cap is ever exceeded. Quiet hours are checked
in zones without daylight saving (Asia/Shanghai, UTC, Asia/Kolkata +05:30, Asia/Kathmandu +05:45)
with windows inside one day and across midnight.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.messaging import policy
from siyu.messaging.policy import ALL, Decision, PolicyConfig, Request
from siyu.models import Priority, SuppressionReason

ZONES = ["Asia/Shanghai", "UTC", "Asia/Kolkata", "Asia/Kathmandu"]
CHANNELS = ["sms", "email", "wecom_customer"]
BASE = datetime(2026, 12, 20, 0, 0, tzinfo=UTC)
"""Requests fall in the 30 days from here: across a month end, a year end and ISO week 2026-W53."""

times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]))
caps_per_scope = st.dictionaries(st.sampled_from(policy.PERIODS), st.integers(1, 4), max_size=3)


@st.composite
def configs(draw: st.DrawFn) -> PolicyConfig:
    caps = draw(st.dictionaries(st.sampled_from([ALL, *CHANNELS]), caps_per_scope, max_size=3))
    platform = draw(st.dictionaries(st.sampled_from(CHANNELS), caps_per_scope, max_size=2))
    return PolicyConfig(
        tz=ZoneInfo(draw(st.sampled_from(ZONES))),
        caps=caps,
        platform_caps=platform,
        quiet_start=draw(times),
        quiet_end=draw(times),
        dedup_days=draw(st.integers(0, 3)),
    )


requests = st.builds(
    Request,
    channel=st.sampled_from(CHANNELS),
    priority=st.sampled_from([int(p) for p in Priority]),
    send_at=st.integers(0, 30 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m)),
    content_hash=st.sampled_from([None, "a", "b"]),
    hold_quiet_hours=st.booleans(),
)


def minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def quiet(config: PolicyConfig, at: datetime) -> bool:
    """The reference quiet-hours test, in minutes of the local day."""
    start, end = minutes(config.quiet_start), minutes(config.quiet_end)
    local = at.astimezone(config.tz)
    now = local.hour * 60 + local.minute
    if start == end:
        return False
    return start <= now < end if start < end else now >= start or now < end


def held_until(config: PolicyConfig, at: datetime) -> datetime:
    """The reference end of quiet hours: step minute by minute to the first quiet-free minute."""
    if not quiet(config, at):
        return at
    moment = at.replace(second=0, microsecond=0)
    while quiet(config, moment):
        moment += timedelta(minutes=1)
    return moment


@dataclass
class Sent:
    channel: str
    at: datetime
    content_hash: str | None


def keys(config: PolicyConfig, at: datetime) -> dict[str, tuple[Any, ...]]:
    """Local day, ISO week and month of `at`, computed independently of `policy.period_keys`."""
    local = at.astimezone(config.tz)
    iso = local.isocalendar()
    return {"day": (local.date(),), "week": (iso.year, iso.week), "month": (local.year, local.month)}


def reference(config: PolicyConfig, sent: list[Sent], request: Request) -> Decision:
    """What the policy should decide, from the full list of earlier admitted (counted) sends."""
    if request.priority == Priority.TRANSACTIONAL:
        return Decision(True, None, request.send_at)
    at = request.send_at
    if quiet(config, at):
        if not request.hold_quiet_hours:
            return Decision(False, SuppressionReason.QUIET_HOURS, at)
        at = held_until(config, at)
    if request.content_hash and config.dedup_days > 0:
        # The policy remembers the last admitted send of each content (in the order admitted).
        earlier = [s.at for s in sent if s.content_hash == request.content_hash]
        if earlier and earlier[-1] > at - timedelta(days=config.dedup_days):
            return Decision(False, SuppressionReason.DUPLICATE, at)
    mine = keys(config, at)

    def used(period: str, channel: str | None) -> int:
        return sum(
            1 for s in sent if (channel is None or s.channel == channel) and keys(config, s.at)[period] == mine[period]
        )

    for period, limit in config.platform_caps.get(request.channel, {}).items():
        if used(period, request.channel) >= limit:
            return Decision(False, SuppressionReason.PLATFORM_CAPPED, at)
    for scope in (ALL, request.channel):
        for period, limit in config.caps.get(scope, {}).items():
            if used(period, None if scope == ALL else request.channel) >= limit:
                return Decision(False, SuppressionReason.CAPPED, at)
    return Decision(True, None, at)


def over_cap(config: PolicyConfig, sent: list[Sent]) -> list[str]:
    """Every (scope, period) bucket holding more admitted sends than its cap."""
    found = []
    for scope, periods in (
        [(ALL, config.caps.get(ALL, {}))]
        + [(c, config.caps.get(c, {})) for c in CHANNELS]
        + [(f"platform:{c}", config.platform_caps.get(c, {})) for c in CHANNELS]
    ):
        channel = scope.removeprefix("platform:")
        for period, limit in periods.items():
            per_key = Counter(keys(config, s.at)[period] for s in sent if scope == ALL or s.channel == channel)
            found += [f"{scope} {period} {k}: {n} > {limit}" for k, n in per_key.items() if n > limit]
    return found


@settings(max_examples=300, deadline=None)
@given(configs(), st.lists(requests, max_size=40))
def test_the_policy_decides_as_the_reference_and_never_exceeds_a_cap(
    config: PolicyConfig, batch: list[Request]
) -> None:
    counts: dict[str, Any] = {}
    recent: dict[str, Any] = {}
    sent: list[Sent] = []
    for request in batch:
        expected = reference(config, sent, request)
        before = {k: dict(v) for k, v in counts.items()}
        decision = policy.decide(config, counts, recent, request)
        assert decision == expected
        if request.priority == Priority.TRANSACTIONAL:
            # transactional: always admitted, at once, and never counted
            assert decision.admitted and decision.not_before == request.send_at
            assert counts == before
            continue
        if decision.admitted:
            sent.append(Sent(request.channel, decision.not_before, request.content_hash))
        else:
            assert counts == before  # a refusal takes no slot
    assert over_cap(config, sent) == []


@settings(max_examples=300, deadline=None)
@given(configs(), requests)
def test_held_sends_land_exactly_at_the_window_end_never_inside(config: PolicyConfig, request: Request) -> None:
    request = Request(request.channel, int(Priority.MARKETING), request.send_at, None, hold_quiet_hours=True)
    uncapped = PolicyConfig(
        tz=config.tz, caps={}, platform_caps={}, quiet_start=config.quiet_start, quiet_end=config.quiet_end
    )
    decision = policy.decide(uncapped, {}, {}, request)
    assert decision.admitted
    assert not quiet(config, decision.not_before)
    if quiet(config, request.send_at):
        local = decision.not_before.astimezone(config.tz)
        assert (local.hour, local.minute, local.second, local.microsecond) == (
            config.quiet_end.hour,
            config.quiet_end.minute,
            0,
            0,
        )
        assert decision.not_before == held_until(config, request.send_at)
        assert timedelta(0) < decision.not_before - request.send_at <= timedelta(days=1)
    else:
        assert decision.not_before == request.send_at


@settings(max_examples=200, deadline=None)
@given(configs(), st.lists(requests, min_size=1, max_size=20))
def test_release_after_decide_restores_the_counts(config: PolicyConfig, batch: list[Request]) -> None:
    counts: dict[str, Any] = {}
    recent: dict[str, Any] = {}
    for request in batch:
        before = {k: dict(v) for k, v in counts.items()}
        decision = policy.decide(config, counts, recent, request)
        if decision.admitted and request.priority != Priority.TRANSACTIONAL:
            policy.release(config, counts, request.channel, decision.not_before)
            assert nonzero(counts) == nonzero(before)
            policy.decide(config, counts, recent, request)  # keep it taken for the next requests


def nonzero(counts: dict[str, Any]) -> dict[str, Any]:
    return {k: {s: n for s, n in v.items() if n} for k, v in counts.items() if any(v.values())}


@settings(max_examples=300, deadline=None)
@given(
    configs(),
    st.integers(0, 30 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m)),
    st.lists(st.integers(-60, 60), max_size=25),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(-20 * 24, 2 * 24), max_size=3),
)
def test_prune_keeps_current_and_future_periods_and_drops_only_past_ones(
    config: PolicyConfig, now: datetime, day_offsets: list[int], recent_hours: dict[str, int]
) -> None:
    # given counters on days (and their weeks and months) around `now`, and content sent around it
    local_now = now.astimezone(config.tz)
    counts: dict[str, Any] = {}
    for offset in day_offsets:
        for key in policy.period_keys(local_now + timedelta(days=offset)).values():
            counts.setdefault(key, {})[ALL] = 1
    for key in policy.period_keys(local_now).values():
        counts.setdefault(key, {})[ALL] = 1
    recent = {h: (now + timedelta(hours=n)).isoformat() for h, n in recent_hours.items()}
    kept_before = dict(counts)
    # when pruned
    policy.prune(counts, recent, now, config)
    # then every key of the current periods and later stays, and every ended day goes (an ended
    # week can survive: see test_policy.py::test_prune_drops_a_past_week_numbered_like_the_month)
    current = policy.period_keys(local_now)
    for key in kept_before:
        kind = {"d": "day", "w": "week", "m": "month"}[key[0]]
        if key[1:] >= current[kind][1:]:
            assert key in counts, key
        elif kind != "week":
            assert key not in counts, key
    assert set(current.values()) <= set(counts)
    horizon = now - timedelta(days=config.dedup_days)
    assert set(recent) == {h for h, n in recent_hours.items() if now + timedelta(hours=n) > horizon}
