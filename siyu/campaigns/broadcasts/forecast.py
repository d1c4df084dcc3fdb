"""A broadcast's forecast: how many it would reach and why the rest would not — a dry run.

Nothing is written: the forecast reads the segment, routes a sample of its members the way
planning would (holdout, channel, consent) and runs `policy.decide` on copies of their touch
states read without locks, so it neither blocks nor disturbs a broadcast planning at the same
time. The numbers are what planning would produce now; by send time caps and consent may differ.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.broadcasts.schemas import BroadcastIn
from siyu.campaigns.broadcasts.service import _check_references
from siyu.kit.clock import Clock
from siyu.messaging import admission, content, policy, reach
from siyu.messaging.planning import Variant, bucket, pick_variant
from siyu.models import (
    ChannelAccount,
    ContentItem,
    Customer,
    Priority,
    QuietHoursMode,
    Segment,
    SuppressionReason,
    TouchState,
)
from siyu.segments.service.members import member_ids

OUTCOMES = (
    "holdout",
    str(SuppressionReason.NO_CHANNEL),
    str(SuppressionReason.UNSUBSCRIBED),
    str(SuppressionReason.CAPPED),
    str(SuppressionReason.PLATFORM_CAPPED),
    str(SuppressionReason.QUIET_HOURS),
    str(SuppressionReason.DUPLICATE),
    "queued",
)
"""Every outcome a forecast reports, in the order planning meets them."""
_SLICE = 500


@dataclass(frozen=True)
class Forecast:
    audience: int
    """Members of the segment now."""
    sampled: int
    """Members the outcomes were computed for (all of them when the audience is small)."""
    by_outcome: dict[str, int]
    """Expected deliveries per outcome (see `OUTCOMES`), scaled from the sample to the audience."""
    sendable: int
    """Expected queued deliveries: the messages that would go out."""
    needs_approval: bool
    """Submitting it (as this actor) would wait for an admin's approval."""


def forecast(session: Session, *, actor: Actor, data: BroadcastIn, clock: Clock, sample: int = 5000) -> Forecast:
    """What planning `data` now would do, computed on the first `sample` members by id.

    The holdout and A/B split use a hash salted by the segment rather than by the broadcast
    (which may not exist yet), so the holdout count is the expected share, not the final list.
    """
    actor.require(Scope.TOUCH_READ)
    _check_references(session, actor, data)
    segment = session.scalar(
        select(Segment).where(Segment.id == data.segment_id, Segment.workspace_id == actor.workspace_id)
    )
    assert segment is not None  # _check_references refused a missing one
    now = clock.now()
    members = member_ids(session, segment, now=now)
    audience = int(session.scalar(select(func.count()).select_from(members.subquery())) or 0)
    ids = [row[0] for row in session.execute(members.order_by(Customer.id).limit(max(sample, 0)))]
    outcomes = _outcomes(session, actor.workspace_id, data, ids, now)
    by_outcome = _scale(outcomes, len(ids), audience)
    threshold = admission.approval_threshold(session, actor.workspace_id)
    return Forecast(
        audience=audience,
        sampled=len(ids),
        by_outcome=by_outcome,
        sendable=by_outcome["queued"],
        needs_approval=audience > threshold and not actor.can(Scope.TOUCH_APPROVE),
    )


def _outcomes(session: Session, workspace_id: int, data: BroadcastIn, ids: list[int], now: datetime) -> Counter[str]:
    """Planning's decisions for `ids`, mirroring `planning.plan_batch` without its writes."""
    counts: Counter[str] = Counter({outcome: 0 for outcome in OUTCOMES})
    if not ids:
        return counts
    config = admission.load_config(session, workspace_id)
    by_id = {
        a.id: a for a in session.scalars(select(ChannelAccount).where(ChannelAccount.id.in_(data.channel_account_ids)))
    }
    accounts = [by_id[i] for i in data.channel_account_ids]
    items = {
        c.id: c
        for c in session.scalars(select(ContentItem).where(ContentItem.id.in_([v.content_id for v in data.variants])))
    }
    variants = [
        Variant(v.key, v.content_id, content.content_hash(items[v.content_id]), v.weight) for v in data.variants
    ]
    salt = f"forecast:segment:{data.segment_id}"
    send_at = max(data.scheduled_at, now) if data.scheduled_at is not None else now
    audience: list[int] = []
    for cid in ids:
        if data.holdout_pct > 0 and bucket(salt + ":holdout", cid) < data.holdout_pct * 100:
            counts["holdout"] += 1
        else:
            audience.append(cid)
    routes = reach.route(session, workspace_id, accounts, audience, marketing=True)
    states = _states(session, workspace_id, audience, config, now)
    for cid in audience:
        found = routes[cid]
        if isinstance(found, SuppressionReason):
            counts[str(found)] += 1
            continue
        state_counts, recent = states.get(cid, ({}, {}))
        request = policy.Request(
            channel=str(found.account.kind),
            priority=int(Priority.MARKETING),
            send_at=send_at,
            content_hash=pick_variant(variants, salt, cid).content_hash,
            hold_quiet_hours=data.quiet_hours == QuietHoursMode.HOLD,
        )
        decision = policy.decide(config, state_counts, recent, request)
        counts["queued" if decision.admitted else str(decision.reason)] += 1
    return counts


def _states(
    session: Session, workspace_id: int, ids: list[int], config: policy.PolicyConfig, now: datetime
) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Copies of the customers' counters, pruned as admission would (plain reads: no locks, no inserts)."""
    now_states: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for start in range(0, len(ids), _SLICE):
        chunk = ids[start : start + _SLICE]
        rows = session.execute(
            select(TouchState.customer_id, TouchState.counts, TouchState.recent).where(
                TouchState.workspace_id == workspace_id, TouchState.customer_id.in_(chunk)
            )
        )
        for cid, counts, recent in rows:
            copied, recent_copy = {key: dict(value) for key, value in (counts or {}).items()}, dict(recent or {})
            policy.prune(copied, recent_copy, now, config)
            now_states[cid] = (copied, recent_copy)
    return now_states


def _scale(counts: Counter[str], sampled: int, audience: int) -> dict[str, int]:
    """Scale sample counts to the audience so they still add up to it (largest remainder)."""
    if sampled == 0 or sampled == audience:
        return {outcome: counts[outcome] for outcome in OUTCOMES}
    exact = {outcome: counts[outcome] * audience / sampled for outcome in OUTCOMES}
    scaled = {outcome: int(value) for outcome, value in exact.items()}
    short = audience - sum(scaled.values())
    for outcome in sorted(OUTCOMES, key=lambda o: exact[o] - scaled[o], reverse=True)[:short]:
        scaled[outcome] += 1
    return scaled
