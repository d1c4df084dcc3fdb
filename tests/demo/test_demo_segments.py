"""The demo brand's order items and segments: lines that add up, a month of honest segment history."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.demo import build_demo
from siyu.demo.orders import PRICES
from siyu.demo.products import BY_PRICE, CATEGORIES, PRODUCTS
from siyu.demo.segments import HISTORY_DAYS, HOLDOUT_SEED, reads_now, snapshot_moment
from siyu.kit.clock import FrozenClock, as_utc
from siyu.models import (
    Customer,
    Job,
    Order,
    OrderItem,
    OrderStatus,
    Segment,
    SegmentMember,
    SegmentMembershipEvent,
    SegmentSizePoint,
    Workspace,
)
from siyu.segments import query
from siyu.segments.definition import parse_definition
from siyu.segments.semantics import in_sample

CUSTOMERS = 300
TZ = ZoneInfo("Asia/Shanghai")
SNAPSHOT_AT = datetime(2026, 11, 11, 23, 59, 59, tzinfo=TZ)
# name → (kind, tracked, members now) on the 300-customer demo at the test clock
EXPECTED = {
    "高价值复购客": ("dynamic", True, 36),
    "近30天活跃": ("dynamic", False, 39),
    "沉睡待唤醒": ("dynamic", True, 66),
    "7天内生日": ("dynamic", False, 3),
    "删粉客户": ("dynamic", False, 21),
    "买过外套未买针织衫": ("dynamic", False, 33),
    "新客首单券对象": ("dynamic", False, 8),
    "静安店通勤极简风好友": ("dynamic", False, 1),
    "10% 对照组": ("dynamic", False, None),  # hashes customer ids, which depend on the backend: see _holdout
    "双11 复购客快照": ("static", False, 31),
}


@pytest.fixture
def built(database: Database, clock: FrozenClock) -> None:
    assert build_demo(database, customers=CUSTOMERS, clock=clock) is True


def _holdout(db: Session) -> int:
    """The size of the 10 % holdout, from the documented hash (ids differ between backends)."""
    ids = db.scalars(select(Customer.id).where(Customer.merged_into_id.is_(None)))
    return sum(in_sample(customer_id, 10, HOLDOUT_SEED) for customer_id in ids)


def _segments(db: Session) -> dict[str, Segment]:
    return {s.name: s for s in db.scalars(select(Segment).order_by(Segment.id))}


def test_every_order_is_paid_for_by_its_items(built: None, db: Session) -> None:
    # given the built demo's orders and their lines
    lines = (
        select(Order.id, Order.total_fen, func.coalesce(func.sum(OrderItem.amount_fen), 0), func.count(OrderItem.id))
        .outerjoin(OrderItem, OrderItem.order_id == Order.id)
        .group_by(Order.id, Order.total_fen)
    )
    orders = db.execute(lines).all()
    # then every order has one to three lines adding up to its total exactly
    assert len(orders) == 238
    assert [(order_id, total) for order_id, total, summed, _ in orders if summed != total] == []
    assert Counter(n for _, _, _, n in orders) == {1: 186, 2: 39, 3: 13}
    # and each line belongs to its order's customer and workspace
    mismatched = db.scalar(
        select(func.count())
        .select_from(OrderItem)
        .join(Order, Order.id == OrderItem.order_id)
        .where((OrderItem.customer_id != Order.customer_id) | (OrderItem.workspace_id != Order.workspace_id))
    )
    assert mismatched == 0
    totals = db.execute(select(func.count(), func.sum(OrderItem.quantity), func.sum(OrderItem.amount_fen))).one()
    assert tuple(totals) == (303, 307, 11_214_300)  # 4 lines hold the same product twice
    assert db.scalar(select(func.sum(Order.total_fen))) == totals[2]


def test_items_are_products_of_the_catalogue(built: None, db: Session) -> None:
    # given the catalogue: every price an order draws has a product
    assert set(BY_PRICE) == set(PRICES)
    assert {p.category for p in PRODUCTS} == set(CATEGORIES)
    assert len({p.sku for p in PRODUCTS}) == len(PRODUCTS)
    catalogue = {p.sku: p for p in PRODUCTS}
    # then every line names a product with its name and category, at its price times the quantity
    for sku, name, category, quantity, amount in db.execute(
        select(OrderItem.sku, OrderItem.product_name, OrderItem.category, OrderItem.quantity, OrderItem.amount_fen)
    ):
        product = catalogue[sku]
        assert (name, category, amount) == (product.name, product.category, quantity * product.price_fen)
    counted = db.execute(select(OrderItem.category, func.count()).group_by(OrderItem.category))
    by_category = {category: n for category, n in counted}
    assert by_category == {"T恤": 36, "外套": 79, "裤装": 48, "连衣裙": 43, "配饰": 33, "针织衫": 64}
    # and a partial refund of a multi-piece order is one piece's price
    for order in db.scalars(select(Order).where(Order.status == OrderStatus.PARTIALLY_REFUNDED)):
        prices = {
            i.amount_fen // i.quantity for i in db.scalars(select(OrderItem).where(OrderItem.order_id == order.id))
        }
        assert order.refunded_fen in prices | {5_000}


def test_the_segments_exist_with_their_month_of_history(built: None, db: Session, clock: FrozenClock) -> None:
    # given the demo's segments
    segments = _segments(db)
    workspace_id = db.scalar(select(Workspace.id).where(Workspace.slug == "default"))
    assert workspace_id is not None
    now = clock.now()
    start = now - timedelta(days=HISTORY_DAYS - 1)
    # then they are the operator's segments, created a month ago by the demo
    holdout = _holdout(db)
    expected = EXPECTED | {"10% 对照组": ("dynamic", False, holdout)}
    assert {name: (str(s.kind), s.is_tracked, s.member_count) for name, s in segments.items()} == expected
    assert {s.created_by for s in segments.values()} == {"siyu demo"}
    assert {as_utc(s.created_at) for s in segments.values() if s.kind == "dynamic"} == {start}
    coupon = segments["新客首单券对象"].definition or {}
    assert {"kind": "segment", "segment_id": segments["高价值复购客"].id, "member": False} in coupon["all"]
    # and every dynamic segment has 30 daily points, each the definition counted at that day's moment
    for segment in segments.values():
        points = list(
            db.execute(
                select(SegmentSizePoint.day, SegmentSizePoint.size)
                .where(SegmentSizePoint.segment_id == segment.id)
                .order_by(SegmentSizePoint.day)
            )
        )
        assert points[-1] == (date(2026, 11, 23), segment.member_count)
        assert segment.counted_at is not None and as_utc(segment.counted_at) == now
        if segment.kind == "static":
            assert [day for day, _ in points] == [date(2026, 11, 11) + timedelta(days=n) for n in range(13)]
            assert {size for _, size in points} == {segment.member_count}
            continue
        assert [day for day, _ in points] == [date(2026, 10, 25) + timedelta(days=n) for n in range(HISTORY_DAYS)]
        node = parse_definition(segment.definition)
        for days_ago, (_, size) in zip(range(HISTORY_DAYS - 1, -1, -1), points, strict=True):
            at = now - timedelta(days=days_ago)
            assert query.count_definition(db, workspace_id=workspace_id, definition=node, now=at) == size
    # and the windows make the numbers move
    sizes = {
        s.name: [p.size for p in db.scalars(select(SegmentSizePoint).where(SegmentSizePoint.segment_id == s.id))]
        for s in segments.values()
    }
    assert {name: (min(v), max(v)) for name, v in sizes.items()} == {
        "高价值复购客": (25, 36),
        "近30天活跃": (15, 39),
        "沉睡待唤醒": (44, 66),
        "7天内生日": (2, 9),
        "删粉客户": (14, 21),
        "买过外套未买针织衫": (26, 33),
        "新客首单券对象": (3, 8),
        "静安店通勤极简风好友": (1, 1),
        "10% 对照组": (holdout, holdout),
        "双11 复购客快照": (31, 31),
    }


def test_tracked_segments_hold_their_members_and_the_snapshot_its_moment(
    built: None, db: Session, clock: FrozenClock
) -> None:
    # given the tracked segments and the snapshot
    segments = _segments(db)
    workspace_id = segments["高价值复购客"].workspace_id
    now = clock.now()
    start = now - timedelta(days=HISTORY_DAYS - 1)

    def members_of(segment: Segment) -> set[int]:
        return set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)))

    def evaluated(segment: Segment, at: datetime) -> set[int]:
        statement = query.members_select(db, workspace_id=workspace_id, definition=segment.definition or {}, now=at)
        return set(query.execute(db, statement).scalars())

    # then a tracked segment's members are its definition's members now
    for name in ("高价值复购客", "沉睡待唤醒"):
        segment = segments[name]
        assert segment.refreshed_at is not None and as_utc(segment.refreshed_at) == now
        assert members_of(segment) == evaluated(segment, now)
        # and its entries and exits, replayed day by day, end in those members
        replayed: set[int] = set()
        changes = db.execute(
            select(
                SegmentMembershipEvent.customer_id, SegmentMembershipEvent.change, SegmentMembershipEvent.occurred_at
            )
            .where(SegmentMembershipEvent.segment_id == segment.id)
            .order_by(SegmentMembershipEvent.id)
        ).all()
        for customer_id, change, _ in changes:
            (replayed.add if change == "entered" else replayed.discard)(customer_id)
        assert replayed == members_of(segment)
        first_day = [c for c, change, at in changes if as_utc(at) == start]
        assert set(first_day) == evaluated(segment, start)
    assert {
        name: Counter(
            str(change)
            for change in db.scalars(
                select(SegmentMembershipEvent.change).where(SegmentMembershipEvent.segment_id == segments[name].id)
            )
        )
        for name in ("高价值复购客", "沉睡待唤醒")
    } == {"高价值复购客": {"entered": 36}, "沉睡待唤醒": {"entered": 66}}  # the windows only grow in this month
    # and their first refresh (queued on creation) is recorded as done at creation
    jobs = db.scalars(select(Job).where(Job.kind == "refresh_segments").order_by(Job.id)).all()
    first = {"segments": 1, "left": 0, "failed": 0}
    assert [(j.args, str(j.status), j.result, as_utc(j.finished_at)) for j in jobs] == [  # type: ignore[arg-type]
        ({"segment_id": segments["高价值复购客"].id}, "succeeded", first | {"entered": 25}, start),
        ({"segment_id": segments["沉睡待唤醒"].id}, "succeeded", first | {"entered": 44}, start),
    ]
    # and the snapshot holds who was a high-value repeat buyer on 双11 night
    snapshot = segments["双11 复购客快照"]
    assert snapshot.source == f"snapshot:{segments['高价值复购客'].id}"
    assert as_utc(snapshot.created_at) == SNAPSHOT_AT.astimezone(UTC)
    assert members_of(snapshot) == evaluated(segments["高价值复购客"], SNAPSHOT_AT)
    assert len(members_of(snapshot)) == snapshot.member_count


def test_the_snapshot_falls_on_double_eleven_only_within_the_month() -> None:
    assert snapshot_moment(datetime(2026, 11, 23, 2, tzinfo=UTC), TZ) == ("双11 复购客快照", SNAPSHOT_AT)
    # 双11 more than 29 days back, or not yet over: mid-month, named by its local day
    later = datetime(2026, 12, 20, 2, tzinfo=UTC)
    assert snapshot_moment(later, TZ) == ("12月5日 复购客快照", later - timedelta(days=15))
    on_the_day = datetime(2026, 11, 11, 12, tzinfo=UTC)
    assert snapshot_moment(on_the_day, TZ) == ("10月27日 复购客快照", on_the_day - timedelta(days=15))


def test_only_definitions_without_relative_time_count_the_same_every_day() -> None:
    assert not reads_now({"kind": "sample", "percent": 10, "seed": "x"})
    assert not reads_now({"all": [{"kind": "tag", "tag_ids": [1]}, {"kind": "purchase", "categories": ["外套"]}]})
    assert not reads_now(
        {"kind": "order", "measure": "count", "op": "gte", "value": 1, "window": {"from": "2026-01-01"}}
    )
    assert reads_now(
        {"not": {"kind": "event", "type": "page.view", "op": "gte", "value": 1, "window": {"last_days": 7}}}
    )
    assert reads_now({"kind": "field", "field": "birthday", "op": "anniversary_within_next", "value": 7})
    assert reads_now({"kind": "order", "measure": "last_paid_at", "op": "more_than_ago", "value": 90})
    assert reads_now({"any": [{"kind": "segment", "segment_id": 3}]})
