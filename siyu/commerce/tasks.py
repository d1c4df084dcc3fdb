"""Background work of commerce: expiring coupons, standing coupon offers, issuing a coupon to a
segment, parked orders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import siyu.commerce.orders.importing.tasks
import siyu.commerce.orders.tasks  # noqa: F401 - parked-order sweep, order lines and pool flags on merges
from siyu.commerce.coupons import expiry, offers
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.commerce.coupons.merge import fold_coupons
from siyu.commerce.errors import CouponLimitReached, CouponNotUsable, CouponOutOfStock
from siyu.customers.activity import on_relationship_added
from siyu.customers.errors import CustomerNotFound
from siyu.customers.service.merge import register_merge_listener
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import Customer, Segment, Workspace
from siyu.segments.service.members import member_ids
from siyu.workspaces.scope import bind_workspace

EXPIRE_KIND = "expire_coupons"
OFFERS_KIND = "coupon_offers"
ISSUE_SEGMENT_KIND = "issue_coupons_to_segment"
BATCH = 500


def _workspaces(database: Database) -> list[int]:
    with database.transaction(read_only=True) as session:
        return list(session.scalars(select(Workspace.id).order_by(Workspace.id)))


def expire_coupons(database: Database, clock: Clock, *, batch: int = 1000) -> int:
    """Expire every due coupon of every workspace, one committed batch at a time."""
    total = 0
    for workspace_id in _workspaces(database):
        while True:
            with database.transaction() as session:
                bind_workspace(session, workspace_id)
                done = expiry.expire_due(session, workspace_id=workspace_id, clock=clock, limit=batch)
            total += done
            if done < batch:
                break
    return total


def run_offers(database: Database, clock: Clock) -> dict[str, int]:
    """Birthday gifts, member-day coupons and the first-order catch-up for every workspace."""
    counts = {"birthday": 0, "member_day": 0, "first_order": 0}
    for workspace_id in _workspaces(database):
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            counts["birthday"] += offers.birthday_offers(session, workspace_id=workspace_id, clock=clock)
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            counts["member_day"] += offers.member_day_offers(session, workspace_id=workspace_id, clock=clock)
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            counts["first_order"] += offers.sweep_first_order(session, workspace_id=workspace_id, clock=clock)
    return counts


def issue_to_segment(
    database: Database,
    *,
    workspace_id: int,
    template_id: int,
    segment_id: int,
    run_key: str,
    clock: Clock,
    actor_label: str | None = None,
) -> dict[str, int]:
    """One coupon to every member of a segment (as it is now), in committed batches; each customer's
    key is `{run_key}:c{id}`, so a job run twice issues once. Stops at the end of the stock."""
    counts = {"issued": 0, "out_of_stock": 0, "skipped": 0}
    with database.transaction(read_only=True) as session:
        bind_workspace(session, workspace_id)
        segment = session.get(Segment, segment_id)
        if segment is None:
            return counts
        statement = member_ids(session, segment, now=clock.now()).order_by(Customer.id)
        ids = [row[0] for row in session.execute(statement.execution_options(siyu_unscoped=True))]
    for start in range(0, len(ids), BATCH):
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            for index, customer_id in enumerate(ids[start : start + BATCH], start=start):
                try:
                    with session.begin_nested():
                        issue_coupon(
                            session,
                            workspace_id=workspace_id,
                            template_id=template_id,
                            customer_id=customer_id,
                            source=f"segment:{segment_id}",
                            idempotency_key=f"{run_key}:c{customer_id}",
                            clock=clock,
                            actor_label=actor_label,
                        )
                    counts["issued"] += 1
                except CouponOutOfStock:
                    counts["out_of_stock"] = len(ids) - index
                    return counts
                except (CouponLimitReached, CouponNotUsable, CustomerNotFound):
                    counts["skipped"] += 1
    return counts


@job_actor(EXPIRE_KIND)
def expire_coupons_job(job: JobContext) -> dict[str, Any]:
    return {"expired": expire_coupons(get_database(), system_clock)}


@job_actor(OFFERS_KIND)
def coupon_offers_job(job: JobContext) -> dict[str, Any]:
    return run_offers(get_database(), system_clock)


@job_actor(ISSUE_SEGMENT_KIND)
def issue_to_segment_job(job: JobContext) -> dict[str, Any]:
    assert job.workspace_id is not None
    return issue_to_segment(
        get_database(),
        workspace_id=job.workspace_id,
        template_id=int(job.args["template_id"]),
        segment_id=int(job.args["segment_id"]),
        run_key=f"job:{job.job_id}",
        clock=system_clock,
        actor_label=job.args.get("actor"),
    )


periodic(EXPIRE_KIND, kind=EXPIRE_KIND, every=lambda: timedelta(days=1))
# Offers run every few hours (each issue is keyed by its occasion): a member day or a birthday is
# served early in the brand's day even when a run was missed.
periodic(OFFERS_KIND, kind=OFFERS_KIND, every=lambda: timedelta(hours=4))
register_merge_listener(fold_coupons)


@on_relationship_added
def _joined(session: Session, workspace_id: int, customer_id: int, clock: Clock) -> None:
    """The new-customer first-order coupon goes out the moment a customer adds a staff member (the
    sweep above only catches up on adds it missed)."""
    offers.issue_first_order(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
