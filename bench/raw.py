"""The baseline writer: the same customers, identities and tags as the importer stores, put in
with plain Core `executemany` inserts (pre-normalised values, no validation, no lookups), one
transaction per batch of file rows, as a hand-written loader would."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, cast

from sqlalchemy import Engine, Table, insert

from bench.data import TAG_NAMES, Row
from siyu.models import Customer, CustomerTag, Identity, LifecycleStage, Tag, TagGroup, TagSource

_CUSTOMERS = cast(Table, Customer.__table__)
_IDENTITIES = cast(Table, Identity.__table__)
_CUSTOMER_TAGS = cast(Table, CustomerTag.__table__)
_TAG_GROUPS = cast(Table, TagGroup.__table__)
_TAGS = cast(Table, Tag.__table__)


@dataclass
class RawCounts:
    customers: int = 0
    identities: int = 0
    tags: int = 0


def create_tags(engine: Engine, workspace_id: int, now: datetime) -> dict[str, int]:
    """The import tag group and the bench's tags, as the importer would create them."""
    with engine.begin() as conn:
        group_id = conn.execute(
            insert(_TAG_GROUPS).returning(_TAG_GROUPS.c.id),
            {"workspace_id": workspace_id, "name": "导入标签", "sort_order": 100},
        ).scalar_one()
        return {
            name: conn.execute(
                insert(_TAGS).returning(_TAGS.c.id),
                {"workspace_id": workspace_id, "group_id": group_id, "name": name},
            ).scalar_one()
            for name in TAG_NAMES
        }


def raw_insert(
    engine: Engine,
    *,
    workspace_id: int,
    rows: Iterable[Row],
    count: int,
    batch_size: int,
    now: datetime,
    tag_ids: dict[str, int] | None = None,
    source: str = "import",
    actor_label: str = "system",
) -> RawCounts:
    """Insert `rows` (duplicates attach their new identities to the earlier customer)."""
    customer_ids = array("q", bytes(8 * count))
    counts = RawCounts()
    stamp = now.isoformat()
    iterator = iter(rows)
    while batch := list(islice(iterator, batch_size)):
        fresh = [r for r in batch if r.duplicate_of is None]
        with engine.begin() as conn:
            payload = [
                {
                    "workspace_id": workspace_id,
                    "name": r.name,
                    "phone": r.phone,
                    "lifecycle_stage": LifecycleStage.NEW,
                    "attributes": {},
                    "field_updated_at": {"name": stamp, "phone": stamp},
                    "created_at": now,
                    "updated_at": now,
                }
                for r in fresh
            ]
            ids = conn.execute(
                insert(_CUSTOMERS).returning(_CUSTOMERS.c.id, sort_by_parameter_order=True), payload
            ).scalars()
            for row, customer_id in zip(fresh, ids, strict=True):
                customer_ids[row.index] = customer_id
            identities: list[dict[str, Any]] = []
            tags: list[dict[str, Any]] = []
            for row in batch:
                owner = customer_ids[row.index if row.duplicate_of is None else row.duplicate_of]
                identities.extend(
                    {
                        "workspace_id": workspace_id,
                        "customer_id": owner,
                        "type": type_,
                        "value": value,
                        "source": source,
                        "created_at": now,
                    }
                    for type_, value in row.identities
                )
                if tag_ids:
                    tags.extend(
                        {
                            "workspace_id": workspace_id,
                            "customer_id": owner,
                            "tag_id": tag_ids[name],
                            "source": TagSource.IMPORT,
                            "assigned_at": now,
                            "assigned_by": actor_label,
                        }
                        for name in row.tags
                    )
            conn.execute(insert(_IDENTITIES), identities)
            if tags:
                conn.execute(insert(_CUSTOMER_TAGS), tags)
        counts.customers += len(fresh)
        counts.identities += len(identities)
        counts.tags += len(tags)
    return counts
