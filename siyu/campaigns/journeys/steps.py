"""What each step does for one enrolment, inside the caller's transaction.

Every function returns a `Result`: the outcome recorded on the step run, where to go next (a
step index, or None for the next one), and a time to wait until. Actions that write (deliveries,
tags, staff tasks) use keys that are unique per enrolment and step, so even outside the step-run
guard a replay could not act twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.customers.service.tags import assign_tag, remove_tag
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import DomainError
from siyu.kit.sql import insert_or_ignore
from siyu.messaging.content import TEMPLATE_FIELDS, content_hash, variables_in
from siyu.messaging.planning import PlanSpec, Variant, plan_batch
from siyu.models import (
    ChannelAccount,
    ContentItem,
    Customer,
    CustomerEvent,
    Journey,
    JourneyEnrolment,
    Order,
    OrderStatus,
    Priority,
    Relationship,
    Segment,
    StaffTask,
    StaffTaskStatus,
)
from siyu.segments.service.members import member_ids

from .triggers import brand_zone


@dataclass(frozen=True)
class Result:
    outcome: str
    goto: int | None = None
    wait_until: datetime | None = None
    exit_reason: str | None = None


def index_of(journey: Journey, step_id: str | None) -> int | None:
    if step_id is None:
        return None
    for index, step in enumerate(journey.steps):
        if step["id"] == step_id:
            return index
    return None


def in_segment(session: Session, segment_id: int, customer_id: int, now: datetime) -> bool:
    """Is the customer a member of the segment now (dynamic: its definition; static: its list)?"""
    segment = session.get(Segment, segment_id)
    if segment is None or segment.archived_at is not None:
        return False
    statement = member_ids(session, segment, now=now, extra=Customer.id == customer_id).limit(1)
    return session.execute(statement.execution_options(siyu_unscoped=True)).first() is not None


def event_since(session: Session, enrolment: JourneyEnrolment, event_type: str) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    CustomerEvent.customer_id == enrolment.customer_id,
                    CustomerEvent.type == event_type,
                    CustomerEvent.occurred_at >= enrolment.enrolled_at,
                )
            )
        )
    )


def goal_met(session: Session, journey: Journey, enrolment: JourneyEnrolment, now: datetime) -> bool:
    """Has the customer reached the journey's goal since enrolling?"""
    goal = journey.goal
    if not goal:
        return False
    if goal["type"] == "order":
        trigger_order = (enrolment.context or {}).get("order_id")
        query = exists().where(
            Order.customer_id == enrolment.customer_id,
            Order.paid_at >= enrolment.enrolled_at,
            Order.status != OrderStatus.REFUNDED,
        )
        if trigger_order is not None:
            query = query.where(Order.id != trigger_order)
        return bool(session.scalar(select(query)))
    if goal["type"] == "event":
        return event_since(session, enrolment, goal["event_type"])
    return in_segment(session, int(goal["segment_id"]), enrolment.customer_id, now)


def wait_until(
    session: Session, journey: Journey, enrolment: JourneyEnrolment, step: dict[str, Any], now: datetime
) -> datetime:
    """When a wait step ends: relative to now, or "day N at HH:MM" brand-local after enrolment."""
    if "day" in step:
        zone = brand_zone(session, journey.workspace_id)
        enrolled_day = as_utc(enrolment.enrolled_at).astimezone(zone).date()
        hour, minute = (int(part) for part in step["at"].split(":"))
        local = datetime.combine(enrolled_day + timedelta(days=int(step["day"])), time(hour, minute), zone)
        return local.astimezone(now.tzinfo)
    if step.get("cycle"):
        days = int((enrolment.context or {}).get("cycle_days") or journey.trigger.get("cycle_days") or 0)
        return now + timedelta(days=days)
    return now + timedelta(
        days=int(step.get("days", 0)), hours=int(step.get("hours", 0)), minutes=int(step.get("minutes", 0))
    )


def split_arm(journey: Journey, enrolment: JourneyEnrolment, step: dict[str, Any]) -> dict[str, Any]:
    """The arm of a random split: a stable hash of the enrolment, so a replay picks the same arm."""
    arms = step["arms"]
    total = sum(int(a.get("weight", 1)) for a in arms)
    digest = hashlib.blake2b(f"journey:{journey.id}:{step['id']}:{enrolment.id}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") % total
    for arm in arms:
        point -= int(arm.get("weight", 1))
        if point < 0:
            return dict(arm)
    return dict(arms[-1])


def send(session: Session, journey: Journey, enrolment: JourneyEnrolment, step: dict[str, Any], clock: Clock) -> Result:
    """Plan one delivery through the delivery policy (caps, quiet hours, consent, dedup)."""
    item = session.get(ContentItem, int(step["content_id"]))
    account_ids = list(step.get("channel_account_ids") or journey.channel_account_ids)
    found = {a.id: a for a in session.scalars(select(ChannelAccount).where(ChannelAccount.id.in_(account_ids)))}
    accounts = [found[i] for i in account_ids if i in found and found[i].is_active]
    if item is None or item.archived_at is not None:
        return Result("skipped:no_content")
    variables = {}
    if (code := (enrolment.context or {}).get("coupon_code")) is not None:
        variables["coupon_code"] = code
    elif "coupon_code" in used_variables(item):
        return Result("skipped:no_coupon")  # no earlier coupon step issued one to this customer
    spec = PlanSpec(
        source="journey",
        source_id=journey.id,
        step=f"{step['id']}:{enrolment.id}",
        accounts=accounts,
        variants=[Variant("A", item.id, content_hash(item))],
        send_at=clock.now(),
        priority=int(Priority.SERVICE),
        salt=f"journey:{journey.id}",
        variables=variables,
    )
    counts = plan_batch(session, journey.workspace_id, spec, [enrolment.customer_id], clock)
    if counts.inserted == 0:
        return Result("already_planned")
    if counts.by_reason:
        return Result(f"suppressed:{next(iter(counts.by_reason))}")
    return Result(next(iter(counts.by_status), "planned"))


def task_staff(session: Session, customer_id: int) -> int | None:
    """Who gets the task: the customer's owner, else the staff member they added most recently."""
    customer = session.get(Customer, customer_id)
    if customer is not None and customer.owner_staff_id is not None:
        return customer.owner_staff_id
    return session.scalar(
        select(Relationship.staff_id)
        .where(Relationship.customer_id == customer_id, Relationship.removed_at.is_(None))
        .order_by(Relationship.added_at.desc(), Relationship.id.desc())
        .limit(1)
    )


def create_task(
    session: Session, journey: Journey, enrolment: JourneyEnrolment, index: int, step: dict[str, Any], clock: Clock
) -> Result:
    now = clock.now()
    staff_id = task_staff(session, enrolment.customer_id)
    added = insert_or_ignore(
        session,
        StaffTask,
        {
            "workspace_id": journey.workspace_id,
            "staff_id": staff_id,
            "customer_id": enrolment.customer_id,
            "source": "journey",
            "source_id": journey.id,
            "idempotency_key": f"journey:{enrolment.id}:{index}",
            "title": step["title"],
            "body": step.get("body", ""),
            "script_id": step.get("script_id"),
            "status": str(StaffTaskStatus.OPEN),
            "due_at": now + timedelta(hours=int(step["due_hours"])) if step.get("due_hours") else None,
            "created_at": now,
        },
        ["idempotency_key"],
    )
    if not added:
        return Result("task:exists")
    return Result("task" if staff_id is not None else "task:unassigned")


def used_variables(item: ContentItem) -> set[str]:
    found: set[str] = set()
    for field in TEMPLATE_FIELDS:
        if source := getattr(item, field, None):
            found |= variables_in(source)
    return found


def issue_step(
    session: Session, journey: Journey, enrolment: JourneyEnrolment, index: int, step: dict[str, Any], clock: Clock
) -> Result:
    """Issue a coupon of the step's template to the customer, once per enrolment and step; its
    code fills `{{ coupon_code }}` in the send steps after it. A template out of stock, archived
    or at the customer's limit is an outcome, not an error: the journey goes on."""
    try:
        with session.begin_nested():
            coupon = issue_coupon(
                session,
                workspace_id=journey.workspace_id,
                template_id=int(step["template_id"]),
                customer_id=enrolment.customer_id,
                source=f"journey:{journey.id}:step:{step['id']}",
                idempotency_key=f"journey:{enrolment.id}:{index}",
                clock=clock,
                actor_label=f"journey:{journey.id}",
            )
    except DomainError as exc:
        return Result(f"coupon:{exc.code}")
    enrolment.context = {**(enrolment.context or {}), "coupon_code": coupon.code, "coupon_id": coupon.id}
    return Result("coupon:issued")


def run_step(session: Session, journey: Journey, enrolment: JourneyEnrolment, index: int, clock: Clock) -> Result:
    """Perform step `index` for the enrolment."""
    step = journey.steps[index]
    kind = step["type"]
    now = clock.now()
    actor = Actor.system(journey.workspace_id, label=f"journey:{journey.id}")
    if kind == "wait":
        return Result("waited", wait_until=wait_until(session, journey, enrolment, step, now))
    if kind == "branch":
        condition = step["condition"]
        if "segment_id" in condition:
            matched = in_segment(session, int(condition["segment_id"]), enrolment.customer_id, now)
        else:
            matched = event_since(session, enrolment, condition["event_type"])
        target = step.get("then") if matched else step.get("else")
        return Result("branch:yes" if matched else "branch:no", goto=index_of(journey, target))
    if kind == "split":
        arm = split_arm(journey, enrolment, step)
        enrolment.context = {**(enrolment.context or {}), f"split:{step['id']}": arm["key"]}
        return Result(f"split:{arm['key']}", goto=index_of(journey, arm.get("goto")))
    if kind == "send":
        return send(session, journey, enrolment, step, clock)
    if kind == "tag":
        added = assign_tag(
            session, actor=actor, customer_id=enrolment.customer_id, tag_id=int(step["tag_id"]), clock=clock
        )
        return Result("tagged" if added else "already_tagged")
    if kind == "untag":
        removed = remove_tag(
            session, actor=actor, customer_id=enrolment.customer_id, tag_id=int(step["tag_id"]), clock=clock
        )
        return Result("untagged" if removed else "not_tagged")
    if kind == "coupon":
        return issue_step(session, journey, enrolment, index, step, clock)
    if kind == "task":
        return create_task(session, journey, enrolment, index, step, clock)
    if kind == "exit":
        return Result("exited", exit_reason="exit_step")
    return Result(f"skipped:{kind}")  # a type retired since the journey was saved
