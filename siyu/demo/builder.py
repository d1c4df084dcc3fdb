"""Build the demo brand: organisation, console users, acquisition set-up and customers with history.

The organisation, channels, live codes and the hook test are written through the ORM and the
services (a few hundred rows); customers and everything hanging off them — identities, tags,
relationships attributed to live codes, their scans, orders and their lines, timeline — go in
with bulk Core inserts, `BATCH` customers at a time, so that 20,000 customers take seconds, not
minutes. Last come the segments an operator keeps, with a month of daily sizes
(`siyu.demo.segments`, through the segments service).
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.passwords import hash_password
from siyu.auth.permissions import Actor
from siyu.auth.service import grant_membership
from siyu.db import Database, refresh_planner_statistics
from siyu.demo import acquisition
from siyu.demo.bulk import insert_returning_ids, insert_rows
from siyu.demo.catalog import (
    ATTRIBUTES,
    BRAND_NAME,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    ONLINE_STAFF,
    REGIONS,
    STORE_STAFF,
    STORES,
    TAG_GROUPS,
    USERS,
)
from siyu.demo.history import EventPlan
from siyu.demo.people import CustomerGenerator, CustomerPlan, Roster
from siyu.demo.segments import build_segments
from siyu.kit.clock import Clock
from siyu.models import (
    AttributeDefinition,
    Consent,
    Customer,
    CustomerEvent,
    CustomerTag,
    Identity,
    LiveCodeScan,
    Order,
    OrderItem,
    Region,
    Relationship,
    Staff,
    Store,
    Tag,
    TagGroup,
    User,
)
from siyu.workspaces.service import ensure_default_workspace

__all__ = ["DEMO_EMAIL", "DEMO_PASSWORD", "build_demo"]

BATCH = 2_000


def build_demo(
    database: Database,
    *,
    customers: int = 20_000,
    clock: Clock,
    progress: Callable[[int], None] | None = None,
    seed: int = 7,
) -> bool:
    """Build the demo brand in the default workspace; False (and nothing written) if it exists.

    Deterministic for a given `seed` and `clock.now()` (but for the live codes' slugs, random by
    design so printed codes cannot be guessed). `progress` is called with the number of customers
    written after each batch. Everything is written in one transaction.
    """
    with _gc_paused(), database.transaction() as session:
        if session.scalar(select(User.id).where(User.email == DEMO_EMAIL)) is not None:
            return False
        now = clock.now()
        workspace = ensure_default_workspace(session, clock=clock, name=BRAND_NAME)
        workspace.name = BRAND_NAME
        roster = _organisation(session, workspace.id, now)
        _users(session, workspace.id, clock)
        tz = ZoneInfo(workspace.timezone)
        # A generator of its own: the scans drawn do not shift who the customers are.
        funnel_rng = random.Random(f"{seed}:acquisition")
        sources = {name: tag_id for (group, name), tag_id in roster.tag_ids.items() if group == "来源"}
        acq = acquisition.setup(session, workspace_id=workspace.id, now=now, tz=tz, rng=funnel_rng, source_tags=sources)
        generator = CustomerGenerator(
            random.Random(seed), now=now, roster=roster, timezone=workspace.timezone, funnel=acq.funnel
        )
        # Products behind the drawn prices come from a generator of their own, like the scans.
        generator.orders.items_rng = random.Random(f"{seed}:order-items")
        taken = session.execute(select(Identity.type, Identity.value).where(Identity.workspace_id == workspace.id))
        generator.reserve({(type_, value) for type_, value in taken})
        event_keys = (f"demo:{n}" for n in count(1))
        done = 0
        while done < customers:
            size = min(BATCH, customers - done)
            _insert_batch(session, workspace.id, [generator.plan() for _ in range(size)], event_keys)
            done += size
            if progress is not None:
                progress(done)
        acquisition.finish(session, acq, workspace_id=workspace.id, rng=funnel_rng)
        record(
            session,
            Actor.system(workspace.id, label="siyu demo"),
            action="create",
            entity_type="demo",
            entity_id=workspace.id,
            after={"brand": BRAND_NAME, "customers": customers, "staff": len(roster.staff_wecom_ids), "seed": seed},
            clock=clock,
        )
        refresh_planner_statistics(
            session,
            (
                "customers",
                "identities",
                "customer_tags",
                "relationships",
                "customer_events",
                "consents",
                "live_code_scans",
                "orders",
                "order_items",
                "experiment_exposures",
                "live_code_route_days",
                "channel_cost_entries",
            ),
        )
        build_segments(session, workspace_id=workspace.id, now=now, tz=tz)
    return True


def _organisation(session: Session, workspace_id: int, now: datetime) -> Roster:
    """Regions, stores, staff, tags and attribute definitions; returns the ids customers need."""
    regions = {name: Region(workspace_id=workspace_id, name=name) for name in REGIONS}
    session.add_all(regions.values())
    session.flush()
    stores = {
        spec.code: Store(
            workspace_id=workspace_id, region_id=regions[spec.region].id, code=spec.code, name=spec.name, city=spec.city
        )
        for spec in STORES
    }
    session.add_all(stores.values())
    session.flush()
    hired = now - timedelta(days=500)  # before the first channel opened
    staff: list[tuple[Staff, str | None]] = [
        (Staff(workspace_id=workspace_id, store_id=stores[code].id, name=name, wecom_user_id=uid), code)
        for code, people in STORE_STAFF.items()
        for name, uid in people
    ] + [(Staff(workspace_id=workspace_id, name=name, wecom_user_id=uid), None) for name, uid in ONLINE_STAFF]
    for n, (member, _) in enumerate(staff):
        member.created_at = hired + timedelta(days=3 * n)
    session.add_all(member for member, _ in staff)
    for sort_order, (group_name, color, tag_names) in enumerate(TAG_GROUPS):
        group = TagGroup(workspace_id=workspace_id, name=group_name, sort_order=sort_order)
        session.add(group)
        session.flush()
        session.add_all(Tag(workspace_id=workspace_id, group_id=group.id, name=t, color=color) for t in tag_names)
    session.add_all(
        AttributeDefinition(workspace_id=workspace_id, key=key, label=label, type=type_)
        for key, label, type_ in ATTRIBUTES
    )
    session.flush()
    groups = session.execute(select(TagGroup.id, TagGroup.name).where(TagGroup.workspace_id == workspace_id))
    group_names = {group_id: name for group_id, name in groups}
    tag_ids = {
        (group_names[group_id], name): tag_id
        for tag_id, group_id, name in session.execute(
            select(Tag.id, Tag.group_id, Tag.name).where(Tag.workspace_id == workspace_id)
        )
    }
    by_city: dict[str, list[int]] = {}
    by_region: dict[str, list[int]] = {}
    for member, code in staff:
        if code is not None:
            spec = next(s for s in STORES if s.code == code)
            by_city.setdefault(spec.city, []).append(member.id)
            by_region.setdefault(spec.region, []).append(member.id)
    return Roster(
        staff_by_city=by_city,
        staff_by_region=by_region,
        online_staff=[member.id for member, code in staff if code is None],
        staff_wecom_ids={member.id: member.wecom_user_id or "" for member, _ in staff},
        store_codes_by_staff={member.id: code for member, code in staff if code is not None},
        tag_ids=tag_ids,
    )


def _users(session: Session, workspace_id: int, clock: Clock) -> None:
    """The demo's console users, one per role, all with `DEMO_PASSWORD`."""
    password_hash = hash_password(DEMO_PASSWORD)  # one hash for all: argon2 is slow on purpose
    for spec in USERS:
        user = User(email=spec.email, name=spec.name, password_hash=password_hash, created_at=clock.now())
        session.add(user)
        session.flush()
        store_id = staff_id = None
        if spec.store_code is not None:
            store_id = session.scalar(
                select(Store.id).where(Store.workspace_id == workspace_id, Store.code == spec.store_code)
            )
        if spec.staff_wecom_user_id is not None:
            staff_id = session.scalar(
                select(Staff.id).where(
                    Staff.workspace_id == workspace_id, Staff.wecom_user_id == spec.staff_wecom_user_id
                )
            )
        grant_membership(
            session,
            user_id=user.id,
            workspace_id=workspace_id,
            role=spec.role,
            clock=clock,
            staff_id=staff_id,
            store_id=store_id,
        )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the build allocates millions of short-lived, acyclic
    objects (reference counting frees them) and full collections would cost a third of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _insert_batch(session: Session, workspace_id: int, plans: list[CustomerPlan], event_keys: Iterator[str]) -> None:
    """Insert one batch of planned customers and everything that hangs off them."""
    ws = {"workspace_id": workspace_id}
    customer_ids = insert_returning_ids(
        session, Customer, [ws | {"merged_into_id": None, "erased_at": None} | plan.row for plan in plans]
    )
    identities: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    consents: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    scans: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    for customer_id, plan in zip(customer_ids, plans, strict=True):
        who = ws | {"customer_id": customer_id}
        created_at = plan.row["created_at"]
        identities += [
            who | {"type": t, "value": v, "source": s, "created_at": created_at} for t, v, s in plan.identities
        ]
        tags += [who | {"tag_id": t, "source": s, "assigned_at": at, "assigned_by": by} for t, s, at, by in plan.tags]
        consents += [
            who | {"channel": c, "status": st, "source": s, "changed_at": at} for c, st, s, at in plan.consents
        ]
        edges += [
            who
            | {
                "staff_id": r.staff_id,
                "added_at": r.added_at,
                "removed_at": r.removed_at,
                "removed_by": r.removed_by,
                "channel": r.channel,
                "live_code_state": r.live_code_state,
                "channel_id": r.channel_id,
                "live_code_id": r.live_code_id,
                "variant": r.variant,
            }
            for r in plan.relationships
        ]
        for scan in [r.scan for r in plan.relationships] + [plan.group_scan]:
            if scan is not None:
                scan["customer_id"] = customer_id
        scans += plan.scans
        orders += [
            who
            | {
                "platform": o.platform,
                "external_id": o.external_id,
                "status": o.status,
                "total_fen": o.total_fen,
                "refunded_fen": o.refunded_fen,
                "paid_at": o.paid_at,
                "created_at": o.paid_at,
            }
            for o in plan.orders
        ]
    insert_rows(session, Identity, identities)
    insert_rows(session, CustomerTag, tags)
    insert_rows(session, Consent, consents)
    insert_rows(session, LiveCodeScan, scans)
    order_ids = insert_returning_ids(session, Order, orders)
    insert_rows(session, OrderItem, _order_items(customer_ids, plans, order_ids, workspace_id))
    edge_ids = iter(insert_returning_ids(session, Relationship, edges))
    events: list[dict[str, Any]] = []
    for customer_id, plan in zip(customer_ids, plans, strict=True):
        timeline = list(plan.events)
        for edge in plan.relationships:
            edge_id = next(edge_ids)
            timeline.append(
                EventPlan(
                    "relationship.added",
                    edge.added_at,
                    "wecom",
                    {
                        "relationship_id": edge_id,
                        "staff_id": edge.staff_id,
                        "channel": edge.channel,
                        "channel_id": edge.channel_id,
                        "live_code_id": edge.live_code_id,
                    },
                )
            )
            if edge.removed_at is not None:
                props = {"relationship_id": edge_id, "staff_id": edge.staff_id, "removed_by": str(edge.removed_by)}
                timeline.append(EventPlan("relationship.removed", edge.removed_at, "wecom", props))
        timeline.sort(key=lambda e: e.occurred_at)
        events += [
            ws
            | {
                "customer_id": customer_id,
                "type": e.type,
                "occurred_at": e.occurred_at,
                "properties": e.properties,
                "source": e.source,
                "idempotency_key": next(event_keys),
                "recorded_at": e.occurred_at,
            }
            for e in timeline
        ]
    insert_rows(session, CustomerEvent, events)


def _order_items(
    customer_ids: list[int], plans: list[CustomerPlan], order_ids: list[int], workspace_id: int
) -> list[dict[str, Any]]:
    """The lines of the batch's orders; `order_ids` are in the order the orders were planned."""
    ids = iter(order_ids)
    rows: list[dict[str, Any]] = []
    for customer_id, plan in zip(customer_ids, plans, strict=True):
        for order in plan.orders:
            line = {"workspace_id": workspace_id, "order_id": next(ids), "customer_id": customer_id}
            rows += [
                line
                | {
                    "sku": item.sku,
                    "product_name": item.product_name,
                    "category": item.category,
                    "quantity": item.quantity,
                    "amount_fen": item.amount_fen,
                }
                for item in order.items
            ]
    return rows
