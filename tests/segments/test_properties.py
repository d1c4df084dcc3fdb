"""Property tests: for random definitions over random data, the compiled SQL selects exactly the
customers that the reference evaluator (tests/segments/reference.py, written from
docs/segments.md) selects — on SQLite and, when configured, on PostgreSQL.

Each example writes a fresh pool inside a savepoint and rolls it back; the workspaces, tags,
staff and channels are made once per test. A second workspace gets random data of its own, so a
condition that forgot its workspace would pick up its customers.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import (
    Consent,
    Coupon,
    CouponTemplate,
    Customer,
    CustomerEvent,
    CustomerTag,
    Identity,
    Member,
    Order,
    OrderItem,
    PointsEntry,
    PointsLot,
    Relationship,
    Tier,
)
from siyu.segments.definition import walk
from siyu.segments.query import count_definition, customer_matches, explain_sql, members_select, node_counts
from siyu.segments.validation import validate_definition
from tests.conftest import NOW
from tests.factories import make_channel, make_staff, make_tag, make_workspace
from tests.segments.factories import make_attribute, make_identity_type, make_segment
from tests.segments.reference import (
    Edge,
    Happening,
    Line,
    Lot,
    Membership,
    Person,
    Reference,
    Sale,
    SavedSegment,
    Voucher,
    World,
)
from tests.segments.strategies import (
    ATTRIBUTE_TYPES,
    TIER_NAMES,
    TZ,
    Catalog,
    definitions,
    loyalty_rows,
    people,
    related,
)

UNSCOPED = {"siyu_unscoped": True}
PROPERTY_SETTINGS = settings(
    # SIYU_SEGMENT_EXAMPLES=2000 for a longer hunt; the default keeps the file well under a minute.
    max_examples=int(os.environ.get("SIYU_SEGMENT_EXAMPLES", "70")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Base:
    """What every example shares: two workspaces with their tags, staff and channels."""

    main: Catalog
    other: Catalog
    tier_names: dict[int, tuple[int, str]]
    """Tier id → (workspace id, name): both workspaces name their tiers alike."""


def _base(db: Session) -> Base:
    """Made once per test (the `db` fixture outlives the examples), before any savepoint."""
    if "segment-base" in db.info:
        cached: Base = db.info["segment-base"]
        return cached
    clock = FrozenClock(NOW)
    catalogs = []
    tier_names: dict[int, tuple[int, str]] = {}
    for attribute_types, size in ((ATTRIBUTE_TYPES, 3), ({**ATTRIBUTE_TYPES, "skin": "integer"}, 1)):
        ws = make_workspace(db, clock=clock)
        for key, kind in attribute_types.items():
            make_attribute(db, workspace=ws, key=key, type=kind)
        make_identity_type(db, workspace=ws, key="app_uid")
        tiers = [
            Tier(workspace_id=ws.id, name=name, rank=rank, threshold=rank * 100, created_at=NOW, updated_at=NOW)
            for rank, name in enumerate(TIER_NAMES)
        ]
        templates = [
            CouponTemplate(
                workspace_id=ws.id, name=f"券{n}", kind="amount_off", value=100, created_at=NOW, updated_at=NOW
            )
            for n in range(2)
        ]
        db.add_all(tiers + templates)
        db.flush()
        tier_names.update({t.id: (ws.id, t.name) for t in tiers})
        catalogs.append(
            Catalog(
                workspace_id=ws.id,
                tag_ids=tuple(make_tag(db, workspace=ws).id for _ in range(size + 1)),
                staff_ids=tuple(make_staff(db, workspace=ws, clock=clock).id for _ in range(size)),
                channel_ids=tuple(make_channel(db, workspace=ws, clock=clock).id for _ in range(max(size - 1, 1))),
                tier_ids=tuple(t.id for t in tiers),
                template_ids=tuple(t.id for t in templates),
            )
        )
    db.flush()
    base = Base(main=catalogs[0], other=catalogs[1], tier_names=tier_names)
    db.info["segment-base"] = base
    return base


def _populate(db: Session, data: st.DataObject, catalog: Catalog, world: World, max_people: int) -> list[int]:
    """Draw and write one workspace's customers and everything about them; returns their ids."""
    rows = data.draw(people(catalog, max_people), label=f"people of {catalog.workspace_id}")
    customers = [
        Customer(
            workspace_id=catalog.workspace_id,
            updated_at=row["created_at"],
            **{k: v for k, v in row.items() if k != "merged_into"},
        )
        for row in rows
    ]
    db.add_all(customers)
    db.flush()
    for customer, row in zip(customers, rows, strict=True):
        if row["merged_into"] is not None:
            customer.merged_into_id = customers[row["merged_into"]].id
        values = {k: v for k, v in row.items() if k != "merged_into"}
        world.customers.append(
            Person(id=customer.id, workspace_id=catalog.workspace_id, merged_into_id=customer.merged_into_id, **values)
        )
    ids = [c.id for c in customers]
    more = data.draw(related(catalog, ids), label=f"rows of {catalog.workspace_id}")
    ws, at = catalog.workspace_id, NOW
    objects: list[Any] = [
        CustomerTag(workspace_id=ws, customer_id=c, tag_id=t, source="manual", assigned_at=at) for c, t in more.tags
    ]
    objects += [
        Identity(workspace_id=ws, customer_id=c, type=k, value=f"{k}-{c}", created_at=at) for c, k in more.identities
    ]
    objects += [Relationship(workspace_id=ws, **r) for r in more.relationships]
    objects += [
        Consent(workspace_id=ws, customer_id=c, channel=ch, status=s, source="test", changed_at=at)
        for (c, ch), s in more.consents.items()
    ]
    objects += [
        CustomerEvent(workspace_id=ws, source="test", idempotency_key=f"k{ws}-{n}", recorded_at=at, **e)
        for n, e in enumerate(more.events)
    ]
    orders = [
        Order(workspace_id=ws, external_id=f"o{n}", created_at=at, **{k: v for k, v in o.items() if k != "items"})
        for n, o in enumerate(more.orders)
    ]
    db.add_all(objects + orders)
    db.flush()
    lines = []
    for order, spec in zip(orders, more.orders, strict=True):
        for sku, category in spec["items"]:
            lines.append(
                OrderItem(
                    workspace_id=ws,
                    order_id=order.id,
                    customer_id=order.customer_id,
                    sku=sku,
                    product_name=sku,
                    category=category,
                    amount_fen=100,
                )
            )
            world.items.append(Line(order_id=order.id, sku=sku, category=category))
        world.orders.append(
            Sale(
                id=order.id,
                customer_id=order.customer_id,
                platform=order.platform,
                status=order.status,
                total_fen=order.total_fen,
                refunded_fen=order.refunded_fen,
                paid_at=spec["paid_at"],
            )
        )
    db.add_all(lines)
    db.flush()
    world.tags |= more.tags
    world.identities |= set(more.identities)
    world.relationships += [Edge(**r) for r in more.relationships]
    world.consents.update(more.consents)
    world.events += [Happening(**e) for e in more.events]
    _loyalty(db, data, catalog, world, ids)
    return ids


def _loyalty(db: Session, data: st.DataObject, catalog: Catalog, world: World, ids: list[int]) -> None:
    """Members with tiers, balances, flags and points lots; coupons in every state."""
    ws = catalog.workspace_id
    rows = data.draw(loyalty_rows(catalog, tuple(ids)), label=f"loyalty of {ws}")
    members = {
        r["customer_id"]: Member(
            workspace_id=ws,
            created_at=NOW,
            updated_at=NOW,
            first_order_id=1 if r["has_first_order"] else None,
            is_repurchaser=r["is_repurchaser"],
            tier_id=r["tier_id"],
            points_balance=r["points_balance"],
            customer_id=r["customer_id"],
        )
        for r in rows.members
    }
    db.add_all(members.values())
    db.flush()
    for r in rows.members:
        world.members[r["customer_id"]] = Membership(**r)
    for n, lot in enumerate(rows.lots):
        member = members[lot["customer_id"]]
        expires_at = None if lot["expires_in"] is None else NOW + lot["expires_in"]
        entry = PointsEntry(
            workspace_id=ws,
            member_id=member.id,
            amount=lot["remaining"] + 1,
            kind="earn",
            reason="purchase",
            description="test",
            idempotency_key=f"lot{ws}-{n}",
            balance_after=0,
            occurred_at=NOW,
        )
        db.add(entry)
        db.flush()
        db.add(
            PointsLot(
                workspace_id=ws,
                member_id=member.id,
                entry_id=entry.id,
                amount=lot["remaining"] + 1,
                remaining=lot["remaining"],
                earned_at=NOW,
                expires_at=expires_at,
            )
        )
        world.lots.append(Lot(lot["customer_id"], lot["remaining"], expires_at))
    for n, coupon in enumerate(rows.coupons):
        expires_at = None if coupon["expires_in"] is None else NOW + coupon["expires_in"]
        db.add(
            Coupon(
                workspace_id=ws,
                template_id=coupon["template_id"],
                customer_id=coupon["customer_id"],
                code=f"C{ws}X{n}",
                slot=n + 1,
                state=coupon["state"],
                source="test",
                idempotency_key=f"c{ws}-{n}",
                issued_at=NOW,
                valid_from=NOW,
                expires_at=expires_at,
            )
        )
        world.coupons.append(Voucher(coupon["customer_id"], coupon["template_id"], coupon["state"], expires_at))
    db.flush()


def _segments(db: Session, data: st.DataObject, catalog: Catalog, world: World, customer_ids: list[int]) -> Catalog:
    """Up to three segments to refer to: dynamic ones (which may refer to earlier ones) and static lists."""
    clock = FrozenClock(NOW)
    for _ in range(data.draw(st.integers(0, 3), label="segments")):
        if data.draw(st.booleans(), label="dynamic"):
            raw = data.draw(definitions(catalog, max_depth=2), label="segment definition")
            validate_definition(db, workspace_id=catalog.workspace_id, raw=raw)
            segment = make_segment(db, workspace=catalog.workspace_id, clock=clock, definition=raw)
            world.segments[segment.id] = SavedSegment(segment.id, "dynamic", definition=raw)
        else:
            members = sorted(data.draw(st.sets(st.sampled_from(customer_ids)) if customer_ids else st.just(set())))
            segment = make_segment(db, workspace=catalog.workspace_id, clock=clock, members=members)
            world.segments[segment.id] = SavedSegment(segment.id, "static", members=set(members))
        catalog = dataclasses.replace(catalog, segment_ids=(*catalog.segment_ids, segment.id))
    return catalog


def _check(
    db: Session, data: st.DataObject, raw: dict[str, Any], world: World, catalog: Catalog, customer_ids: list[int]
) -> None:
    """The SQL members, count, per-node counts and one customer's membership against the reference."""
    ws = catalog.workspace_id
    note(f"definition: {json.dumps(raw, ensure_ascii=False)}")
    node = validate_definition(db, workspace_id=ws, raw=raw)
    reference = Reference(world, ws, NOW, TZ)
    want = reference.members(node)

    got = set(db.scalars(members_select(db, workspace_id=ws, definition=node, now=NOW), execution_options=UNSCOPED))
    assert sorted(got) == sorted(want), json.dumps(raw, ensure_ascii=False)
    assert count_definition(db, workspace_id=ws, definition=node, now=NOW) == len(want)

    per_node = node_counts(db, workspace_id=ws, node=node, now=NOW)
    assert per_node == {n.path: sum(reference.holds(n, p) for p in reference.pool) for n in walk(node)}

    if customer_ids:
        one = data.draw(st.sampled_from(customer_ids), label="one customer")
        assert customer_matches(db, workspace_id=ws, node=node, customer_id=one, now=NOW) == (one in want)
    assert "FROM customers" in explain_sql(db, workspace_id=ws, definition=node, now=NOW)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_sql_selects_exactly_what_the_reference_selects(db: Session, data: st.DataObject) -> None:
    base = _base(db)
    savepoint = db.begin_nested()
    try:
        # given random pools in two workspaces and a few segments to refer to
        world = World(attribute_types=dict(ATTRIBUTE_TYPES), tier_names=dict(base.tier_names))
        customer_ids = _populate(db, data, base.main, world, max_people=25)
        _populate(db, data, base.other, world, max_people=5)
        catalog = _segments(db, data, base.main, world, customer_ids)
        # when random definitions run as SQL, then they agree with the reference
        for raw in data.draw(st.lists(definitions(catalog), min_size=1, max_size=4), label="definitions"):
            _check(db, data, raw, world, catalog, customer_ids)
    finally:
        savepoint.rollback()


@PROPERTY_SETTINGS
@given(data=st.data())
def test_every_customer_alone_agrees_with_the_whole_pool(db: Session, data: st.DataObject) -> None:
    base = _base(db)
    savepoint = db.begin_nested()
    try:
        # given a small random pool and one random definition
        world = World(attribute_types=dict(ATTRIBUTE_TYPES), tier_names=dict(base.tier_names))
        customer_ids = _populate(db, data, base.main, world, max_people=6)
        catalog = _segments(db, data, base.main, world, customer_ids)
        raw = data.draw(definitions(catalog), label="definition")
        note(f"definition: {json.dumps(raw, ensure_ascii=False)}")
        node = validate_definition(db, workspace_id=catalog.workspace_id, raw=raw)
        # when each customer is evaluated on their own (as on an incoming event or order)
        alone = {
            cid
            for cid in customer_ids
            if customer_matches(db, workspace_id=catalog.workspace_id, node=node, customer_id=cid, now=NOW)
        }
        # then exactly the members of the whole query match
        whole = set(
            db.scalars(
                members_select(db, workspace_id=catalog.workspace_id, definition=node, now=NOW),
                execution_options=UNSCOPED,
            )
        )
        assert alone == whole
        assert whole == Reference(world, catalog.workspace_id, NOW, TZ).members(node)
    finally:
        savepoint.rollback()
