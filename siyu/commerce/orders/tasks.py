"""Background work of orders: the sweep that ingests parked orders once their buyer is a customer.

Loading this module also wires orders into customer merges: order lines follow their customer,
and the survivor's pool flags (首单 / 复购) are recomputed inside every merge.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.orders import flags, parked
from siyu.customers.activity import on_relationship_added
from siyu.customers.service.merge import register_merge_listener, register_movable
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import OrderItem, ParkedOrder
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
SWEEP_KIND = "ingest_parked_orders"

register_movable(OrderItem)
register_merge_listener(flags.recompute_after_merge)


@on_relationship_added
def _rejoined(session: Session, workspace_id: int, customer_id: int, clock: Clock) -> None:
    """A first relationship moves the customer's join time: their orders before it leave the pool."""
    flags.recompute_customer(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)


def sweep_parked(database: Database, clock: Clock) -> dict[str, int]:
    """Ingest every parked order whose buyer now matches a customer, workspace by workspace, one
    transaction per batch (a crash resumes from what is still unresolved)."""
    with database.transaction(read_only=True) as session:
        workspaces = list(
            session.scalars(select(ParkedOrder.workspace_id).where(ParkedOrder.resolved_at.is_(None)).distinct())
        )
    totals = {"workspaces": len(workspaces), "ingested": 0, "failed": 0}
    for workspace_id in workspaces:
        after: int | None = 0
        while after is not None:
            try:
                with database.transaction() as session:
                    bind_workspace(session, workspace_id)
                    ingested, after = parked.sweep(session, workspace_id=workspace_id, clock=clock, after_id=after)
                totals["ingested"] += ingested
            except Exception:
                # One workspace's broken batch must not stop the others.
                logger.exception("parked order sweep failed", extra={"workspace_id": workspace_id})
                totals["failed"] += 1
                break
    return totals


@job_actor(SWEEP_KIND)
def sweep_parked_job(job: JobContext) -> dict[str, Any]:
    return sweep_parked(get_database(), system_clock)


periodic(SWEEP_KIND, kind=SWEEP_KIND, every=lambda: timedelta(minutes=10))
