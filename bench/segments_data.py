"""The segments bench's data: a deterministic brand with customers, tags, relationships, events and
orders, written with raw bulk inserts (SQLite `executemany` in large transactions, PostgreSQL
`COPY`), then `ANALYZE`d. No index is created here: the tables carry what the migrations made.

Every table is generated customer by customer from its own seeded `random.Random`, so the data
depend only on the size, never on batch sizes or the database. Shapes (per customer, roughly):
- profile: 55% female, 33% male, the rest unknown or unset; city from ten cities (上海 16%,
  杭州 12%…), 9% unset and 2% empty; one customer in 97 is merged into the one before it;
- tags: 60% carry 1–3 of 30 tags with Zipf popularity (the top tag on ≈ 22% of customers); holders
  of the second tag often hold the third too (related interests);
- relationships: 70% are a friend of one of 12 staff (8% of two); 15% of edges were removed,
  70% of those by the customer;
- events: 10 per customer on average, Pareto-skewed activity, 70% page.view / 20% product.view /
  6% coupon.claim / 4% checkin.done, skewed towards the recent part of the last 365 days;
- orders: 3 per customer on average, activity correlated with events, on taobao/jd/youzan/
  miniprogram over two years, 1,000–200,000 fen skewed low, 10% partly and 5% fully refunded.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, cast

import psycopg
from sqlalchemy import Engine, Table, func, insert, select, text

from siyu.models import Customer, Segment, SegmentVersion, Staff, Tag, TagGroup

_CUSTOMERS = cast(Table, Customer.__table__)
_TAG_GROUPS = cast(Table, TagGroup.__table__)
_TAGS = cast(Table, Tag.__table__)
_STAFF = cast(Table, Staff.__table__)
_SEGMENTS = cast(Table, Segment.__table__)
_SEGMENT_VERSIONS = cast(Table, SegmentVersion.__table__)

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
"""The fixed "now" of the bench: windows ("last 30 days") are counted back from it."""
CUSTOMERS = {"tiny": 2_000, "small": 100_000, "full": 1_000_000}
EVENTS_PER_CUSTOMER = 10
ORDERS_PER_CUSTOMER = 3
SEED = 4_2026_1123
STAFF = 12
MERGED_EVERY = 97
"""Customer i with i % 97 == 96 is merged into customer i - 1 (outside the pool)."""

TAG_GROUPS = {
    "兴趣": ["护肤", "彩妆", "香水", "母婴", "宠物", "运动", "户外", "咖啡", "茶饮", "烘焙"],
    "人群": ["学生", "白领", "宝妈", "银发", "新中产", "小镇青年", "精致妈妈", "Z世代", "都市蓝领", "资深中产"],
    "渠道": ["直播间", "小红书种草", "包裹卡", "门店", "社群", "公众号", "视频号", "朋友推荐", "抖音", "线下活动"],
}
"""30 tags in three groups; the order below is also the popularity rank used for Zipf weights."""
_TAG_NAMES = [name for names in TAG_GROUPS.values() for name in names]
_TAG_WEIGHTS = [1 / (rank + 1) for rank in range(len(_TAG_NAMES))]

_CITIES = [
    ("上海", "上海", 16),
    ("杭州", "浙江", 12),
    ("北京", "北京", 14),
    ("广州", "广东", 9),
    ("深圳", "广东", 10),
    ("成都", "四川", 7),
    ("南京", "江苏", 6),
    ("苏州", "江苏", 6),
    ("武汉", "湖北", 5),
    ("西安", "陕西", 4),
    (None, None, 9),
    ("", None, 2),
]
_GENDERS = [("female", 55), ("male", 33), ("unknown", 6), (None, 6)]
_STAGES = [("new", 30), ("active", 25), ("loyal", 12), ("dormant", 20), ("churned", 8), ("lead", 5)]
_EVENT_TYPES = [("page.view", 70), ("product.view", 20), ("coupon.claim", 6), ("checkin.done", 4)]
_PLATFORMS = [("taobao", 40), ("jd", 25), ("youzan", 15), ("miniprogram", 20)]
_YEAR_S = 365 * 86_400.0
_TWO_YEARS_S = 2 * _YEAR_S


def _cumulative(weights: Sequence[tuple[Any, int]]) -> tuple[list[Any], list[float]]:
    total = sum(w for _, w in weights)
    edges, running = [], 0
    for _, w in weights:
        running += w
        edges.append(running / total)
    return [value for value, _ in weights], edges


def _pick(values: list[Any], edges: list[float], u: float) -> Any:
    for value, edge in zip(values, edges, strict=True):
        if u < edge:
            return value
    return values[-1]


@dataclass
class Brand:
    """What was loaded, with the ids the reference segments need."""

    workspace_id: int
    customers: int
    first_customer_id: int
    tag_ids: list[int]
    """By popularity rank: `tag_ids[0]` is the most common tag."""
    staff_ids: list[int]
    lapsed_segment_id: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    """Rows written per table."""


class Stamp:
    """UTC instants as each database's bulk path takes them: SQLite's naive text, PostgreSQL's +00."""

    def __init__(self, kind: str) -> None:
        self.base = NOW.replace(tzinfo=None)
        self.suffix = "" if kind == "sqlite" else "+00"

    def ago(self, seconds: float) -> str:
        return (self.base - timedelta(seconds=seconds)).isoformat(" ", "microseconds") + self.suffix


# --- generators: one tuple per row, in the column order of `COLUMNS` -----------------------------

COLUMNS = {
    "customers": "id, workspace_id, name, gender, province, city, lifecycle_stage, attributes, field_updated_at,"
    " merged_into_id, created_at, updated_at",
    "customer_tags": "workspace_id, customer_id, tag_id, source, assigned_at, assigned_by",
    "relationships": "workspace_id, staff_id, customer_id, added_at, removed_at, removed_by, channel",
    "customer_events": "workspace_id, customer_id, type, occurred_at, properties, source, idempotency_key, recorded_at",
    "orders": "workspace_id, customer_id, platform, external_id, status, total_fen, refunded_fen, paid_at, created_at",
}
"""The column list of each bulk-loaded table, in the order its generator yields values."""


def customers(brand: Brand, stamp: Stamp) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 1)
    cities, city_edges = _cumulative([(c[:2], c[2]) for c in _CITIES])
    genders, gender_edges = _cumulative(_GENDERS)
    stages, stage_edges = _cumulative(_STAGES)
    ws, first = brand.workspace_id, brand.first_customer_id
    for i in range(brand.customers):
        city, province = _pick(cities, city_edges, rng.random())
        created = stamp.ago(_TWO_YEARS_S * rng.random())
        merged = first + i - 1 if i % MERGED_EVERY == MERGED_EVERY - 1 else None
        yield (
            first + i,
            ws,
            f"客户{i:07d}",
            _pick(genders, gender_edges, rng.random()),
            province,
            city,
            _pick(stages, stage_edges, rng.random()),
            "{}",
            "{}",
            merged,
            created,
            created,
        )


def customer_tags(brand: Brand, stamp: Stamp) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 2)
    ranks = range(len(_TAG_NAMES))
    ws, first, ids = brand.workspace_id, brand.first_customer_id, brand.tag_ids
    for i in range(brand.customers):
        u = rng.random()
        if u < 0.4:
            continue
        wanted = 1 if u < 0.7 else 2 if u < 0.88 else 3
        held: set[int] = set()
        while len(held) < wanted:
            held.update(rng.choices(ranks, _TAG_WEIGHTS, k=wanted - len(held)))
        if 1 in held and rng.random() < 0.4:
            held.add(2)
        assigned = stamp.ago(_YEAR_S * rng.random())
        for rank in sorted(held):
            yield (ws, first + i, ids[rank], "import", assigned, "bench")


def relationships(brand: Brand, stamp: Stamp) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 3)
    ws, first, staff = brand.workspace_id, brand.first_customer_id, brand.staff_ids
    for i in range(brand.customers):
        u = rng.random()
        if u >= 0.7:
            continue
        for staff_id in rng.sample(staff, 2 if u < 0.056 else 1):
            added_ago = _TWO_YEARS_S * rng.random()
            removed_at = removed_by = None
            if rng.random() < 0.15:
                removed_at = stamp.ago(added_ago * rng.random())
                removed_by = "customer" if rng.random() < 0.7 else "staff"
            yield (ws, staff_id, first + i, stamp.ago(added_ago), removed_at, removed_by, None)


def _spread(total: int, weights: array[float]) -> array[int]:
    """`total` rows split over customers in proportion to their weights, summing exactly."""
    scale = total / sum(weights)
    counts = array("q", (int(w * scale) for w in weights))
    short = total - sum(counts)
    for i in range(short):  # the rounding remainder, one each to the first customers
        counts[i % len(counts)] += 1
    return counts


def activity(brand: Brand) -> tuple[array[int], array[int]]:
    """Events and orders per customer: Pareto-skewed activity, orders correlated with events."""
    rng = random.Random(SEED + 4)
    events_w, orders_w = array("d"), array("d")
    for _ in range(brand.customers):
        w = min(rng.paretovariate(1.4), 60.0)
        events_w.append(w)
        orders_w.append(w**0.7 * rng.lognormvariate(0.0, 0.6))
    n = brand.customers
    return _spread(n * EVENTS_PER_CUSTOMER, events_w), _spread(n * ORDERS_PER_CUSTOMER, orders_w)


def events(brand: Brand, stamp: Stamp, counts: array[int]) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 5)
    types, type_edges = _cumulative(_EVENT_TYPES)
    ws, first, seq = brand.workspace_id, brand.first_customer_id, 0
    for i, count in enumerate(counts):
        for _ in range(count):
            type_ = _pick(types, type_edges, rng.random())
            at = stamp.ago(_YEAR_S * rng.random() ** 1.6)  # recent days are busier
            if type_ == "page.view":
                props = f'{{"page": "/p/{rng.randrange(500)}"}}'
            elif type_ == "product.view":
                props = f'{{"sku": "SKU{rng.randrange(2000):05d}"}}'
            elif type_ == "coupon.claim":
                props = f'{{"coupon": "C{rng.randrange(40):02d}"}}'
            else:
                props = "{}"
            seq += 1
            yield (ws, first + i, type_, at, props, "bench", f"bench-{seq}", at)


def orders(brand: Brand, stamp: Stamp, counts: array[int]) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 6)
    platforms, platform_edges = _cumulative(_PLATFORMS)
    ws, first, seq = brand.workspace_id, brand.first_customer_id, 0
    for i, count in enumerate(counts):
        for _ in range(count):
            total = 1_000 + int(199_000 * rng.random() ** 2.5)
            u = rng.random()
            if u < 0.05:
                status, refunded = "refunded", total
            elif u < 0.15:
                status, refunded = "partially_refunded", int(total * (0.1 + 0.8 * rng.random()))
            else:
                status, refunded = "paid", 0
            paid = stamp.ago(_TWO_YEARS_S * rng.random() ** 1.2)
            seq += 1
            platform = _pick(platforms, platform_edges, rng.random())
            yield (ws, first + i, platform, f"B{seq:010d}", status, total, refunded, paid, paid)


# --- writing ----------------------------------------------------------------------------------------


def _sqlite_write(engine: Engine, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
    columns = COLUMNS[table]
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * (columns.count(',') + 1))})"
    connection = engine.raw_connection()
    written = 0
    try:
        cursor = connection.cursor()
        # A large page cache for this connection only (the pool is disposed after loading), so
        # index maintenance of the big tables does not thrash.
        cursor.execute("PRAGMA cache_size=-1000000")
        iterator = iter(rows)
        while True:
            cursor.execute("BEGIN")
            in_transaction = 0
            while in_transaction < 500_000 and (batch := list(islice(iterator, 50_000))):
                cursor.executemany(sql, batch)
                in_transaction += len(batch)
            cursor.execute("COMMIT")
            written += in_transaction
            if in_transaction < 500_000:
                break
        cursor.close()
    finally:
        connection.close()
    return written


def _postgres_write(engine: Engine, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
    connection = engine.raw_connection()
    written = 0
    try:
        pg = cast("psycopg.Connection[Any]", connection.driver_connection)
        with pg.cursor() as cursor, cursor.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
        pg.commit()
    finally:
        connection.close()
    return written


def write(engine: Engine, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
    """Bulk insert `rows` into `table`; returns how many were written."""
    if engine.dialect.name == "sqlite":
        return _sqlite_write(engine, table, rows)
    return _postgres_write(engine, table, rows)


def setup(engine: Engine, workspace_id: int, size: str) -> Brand:
    """Tag groups, tags, staff and the customer id range of a new brand (small Core inserts)."""
    with engine.begin() as conn:
        first = int(conn.execute(select(func.coalesce(func.max(_CUSTOMERS.c.id), 0))).scalar_one()) + 1
        tag_ids: list[int] = []
        for order, (group, names) in enumerate(TAG_GROUPS.items()):
            group_id = conn.execute(
                insert(_TAG_GROUPS).returning(_TAG_GROUPS.c.id),
                {"workspace_id": workspace_id, "name": group, "sort_order": order},
            ).scalar_one()
            tag_ids += conn.execute(
                insert(_TAGS).returning(_TAGS.c.id, sort_by_parameter_order=True),
                [{"workspace_id": workspace_id, "group_id": group_id, "name": name} for name in names],
            ).scalars()
        staff_ids = list(
            conn.execute(
                insert(_STAFF).returning(_STAFF.c.id, sort_by_parameter_order=True),
                [
                    {
                        "workspace_id": workspace_id,
                        "name": f"导购{k + 1:02d}",
                        "wecom_user_id": f"bench{k + 1}",
                        "is_active": True,
                        "created_at": NOW,
                    }
                    for k in range(STAFF)
                ],
            ).scalars()
        )
    return Brand(workspace_id, CUSTOMERS[size], first, tag_ids, staff_ids)


def load(engine: Engine, brand: Brand, step: Any = None) -> None:
    """Write every table of `brand`, then refresh planner statistics."""
    stamp = Stamp(engine.dialect.name)
    event_counts, order_counts = activity(brand)
    tables: list[tuple[str, Iterable[tuple[Any, ...]]]] = [
        ("customers", customers(brand, stamp)),
        ("customer_tags", customer_tags(brand, stamp)),
        ("relationships", relationships(brand, stamp)),
        ("customer_events", events(brand, stamp, event_counts)),
        ("orders", orders(brand, stamp, order_counts)),
    ]
    for table, rows in tables:
        if step:
            step(f"writing {table}")
        brand.rows[table] = write(engine, table, rows)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), max(id)) FROM customers"))
            conn.commit()
    if step:
        step("ANALYZE")
    analyze(engine)
    engine.dispose()  # drop the loading connections (and their big page cache)


def analyze(engine: Engine) -> None:
    """Planner statistics (and, on PostgreSQL, the visibility map that index-only scans rely on)."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        return
    # VACUUM cannot run in a transaction. It is what autovacuum would soon do on its own after a
    # bulk load; doing it now keeps it from starting in the middle of the timings.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def add_segment(engine: Engine, brand: Brand, name: str, definition: dict[str, Any]) -> int:
    """A saved dynamic segment (and its first version), as the segment service would store it."""
    with engine.begin() as conn:
        segment_id = int(
            conn.execute(
                insert(_SEGMENTS).returning(_SEGMENTS.c.id),
                {
                    "workspace_id": brand.workspace_id,
                    "name": name,
                    "kind": "dynamic",
                    "definition": definition,
                    "version": 1,
                    "is_tracked": False,
                    "created_by": "bench",
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            ).scalar_one()
        )
        conn.execute(
            insert(_SEGMENT_VERSIONS),
            {
                "workspace_id": brand.workspace_id,
                "segment_id": segment_id,
                "version": 1,
                "definition": definition,
                "created_by": "bench",
                "created_at": NOW,
            },
        )
    return segment_id
