"""Planning deliveries: holdout, variant, channel, policy — one row per customer per source step.

`plan_batch` is what broadcasts call per batch of segment members and what SOP send steps call
for one customer. It writes every audience member's row (holdout, suppressed with a reason, or
queued) with insert-or-ignore on the delivery's unique key, in the caller's transaction together
with the policy counters, so a batch is planned entirely or not at all.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.messaging import admission, policy, reach
from siyu.models import ChannelAccount, Delivery, DeliveryStatus, Priority, SuppressionReason


@dataclass(frozen=True)
class Variant:
    key: str
    content_id: int
    content_hash: str
    weight: int = 1


@dataclass(frozen=True)
class PlanSpec:
    """What to plan: a source step, its channels in preference order, its content and rules."""

    source: str
    source_id: int
    step: str
    accounts: Sequence[ChannelAccount]
    variants: Sequence[Variant]
    send_at: datetime
    priority: int = int(Priority.MARKETING)
    holdout_pct: int = 0
    hold_quiet_hours: bool = True
    salt: str = ""
    """Seeds the holdout and variant hashes (stable per source, so a re-plan picks the same)."""
    variables: Mapping[str, Any] = field(default_factory=dict)
    """Values the step supplies for every recipient (e.g. the coupon code a step issued)."""


@dataclass
class PlanCounts:
    """How many rows a batch produced, by status and by suppression reason."""

    by_status: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    inserted: int = 0

    def add(self, other: PlanCounts) -> None:
        self.by_status.update(other.by_status)
        self.by_reason.update(other.by_reason)
        self.inserted += other.inserted


def bucket(salt: str, customer_id: int, modulus: int = 10_000) -> int:
    """A stable pseudo-random bucket for a customer within a source (holdout, A/B split)."""
    digest = hashlib.blake2b(f"{salt}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % modulus


def pick_variant(variants: Sequence[Variant], salt: str, customer_id: int) -> Variant:
    """The customer's A/B variant, by weight (all weights 0 or less: equal shares)."""
    weights = [max(v.weight, 0) for v in variants]
    if sum(weights) == 0:
        weights = [1] * len(variants)
    point = bucket(salt + ":variant", customer_id, sum(weights))
    for variant, weight in zip(variants, weights, strict=True):
        point -= weight
        if point < 0:
            return variant
    return variants[-1]


def plan_batch(
    session: Session,
    workspace_id: int,
    spec: PlanSpec,
    customer_ids: Sequence[int],
    clock: Clock,
    config: policy.PolicyConfig | None = None,
) -> PlanCounts:
    """Plan one delivery row per customer (ascending ids); returns what was written."""
    config = config or admission.load_config(session, workspace_id)
    now = clock.now()
    ids = sorted(set(customer_ids))
    rows: list[dict[str, Any]] = []
    audience: list[int] = []
    chosen: dict[int, Variant] = {}

    def row(cid: int, status: DeliveryStatus, variant: Variant | None, **values: Any) -> dict[str, Any]:
        base = {
            "workspace_id": workspace_id,
            "source": spec.source,
            "source_id": spec.source_id,
            "step": spec.step,
            "customer_id": cid,
            "channel_account_id": None,
            "channel": None,
            "address": None,
            "staff_id": None,
            "variant": variant.key if variant else None,
            "content_id": variant.content_id if variant else None,
            "content_hash": variant.content_hash if variant else None,
            "priority": spec.priority,
            "status": status,
            "reason": None,
            "not_before": spec.send_at,
            "slot_at": None,
            "planned_at": now,
            "attempts": 0,
            "message": {"vars": dict(spec.variables)} if spec.variables else None,
        }
        base.update(values)
        return base

    for cid in ids:
        variant = pick_variant(spec.variants, spec.salt, cid)
        chosen[cid] = variant
        if spec.holdout_pct > 0 and bucket(spec.salt + ":holdout", cid) < spec.holdout_pct * 100:
            rows.append(row(cid, DeliveryStatus.HOLDOUT, variant))
        else:
            audience.append(cid)
    routes = reach.route(
        session, workspace_id, spec.accounts, audience, marketing=spec.priority != Priority.TRANSACTIONAL
    )
    reachable: list[tuple[int, reach.Route]] = []
    for cid in audience:
        found = routes[cid]
        if isinstance(found, SuppressionReason):
            rows.append(row(cid, DeliveryStatus.SUPPRESSED, chosen[cid], reason=found))
        else:
            reachable.append((cid, found))
    requests = [
        (
            cid,
            policy.Request(
                channel=str(found.account.kind),
                priority=spec.priority,
                send_at=spec.send_at,
                content_hash=chosen[cid].content_hash,
                hold_quiet_hours=spec.hold_quiet_hours,
            ),
        )
        for cid, found in reachable
    ]
    decisions = admission.admit(session, workspace_id, config, requests, clock)
    for (cid, found), decision in zip(reachable, decisions, strict=True):
        target = {
            "channel_account_id": found.account.id,
            "channel": str(found.account.kind),
            "address": found.address,
            "staff_id": found.staff_id,
            "not_before": decision.not_before,
        }
        if decision.admitted:
            charged = decision.not_before if spec.priority != Priority.TRANSACTIONAL else None
            rows.append(row(cid, DeliveryStatus.QUEUED, chosen[cid], slot_at=charged, **target))
        else:
            rows.append(row(cid, DeliveryStatus.SUPPRESSED, chosen[cid], reason=decision.reason, **target))
    counts = PlanCounts()
    counts.inserted = insert_deliveries(session, rows)
    for values in rows:
        counts.by_status[str(values["status"])] += 1
        if values["reason"]:
            counts.by_reason[str(values["reason"])] += 1
    return counts


def insert_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert delivery rows, skipping any whose unique key already exists; returns rows inserted."""
    if not rows:
        return 0
    params = [{**r, "status": str(r["status"]), "reason": str(r["reason"]) if r["reason"] else None} for r in rows]
    key = ["workspace_id", "source", "source_id", "step", "customer_id"]
    return len(admission.insert_returning(session, cast(Table, Delivery.__table__), params, key, "id"))
