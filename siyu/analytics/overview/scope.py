"""Which customers and friend edges the overview counts, from its filters.

Customer figures (pool, orders, activity) count customers in scope: not merged away, and matching
every filter — channel: has a friend edge from that channel; store: owner staff works in that
store; staff: owner staff; tag: carries the tag; segment: is a member now. Edge figures (adds,
deletions, the deletion rate) count edges of customers in scope, where the channel and staff
filters apply to the edge itself (the edge's channel, the staff member holding it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select, true
from sqlalchemy.orm import Session

from siyu.analytics.overview.schemas import Filters
from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Channel, Customer, CustomerTag, Relationship, Segment, Staff, Store, Tag
from siyu.segments.service.members import member_ids

_LOOKUPS: dict[str, Any] = {
    "channel_id": Channel,
    "store_id": Store,
    "staff_id": Staff,
    "tag_id": Tag,
    "segment_id": Segment,
}


@dataclass(frozen=True)
class Scope:
    """The filters turned into SQL: `customers` and `edge_customers` select customer ids."""

    workspace_id: int
    filters: Filters
    customers: Select[Any]
    edge_customers: Select[Any]

    def edge_condition(self) -> ColumnElement[bool]:
        """Edges the adds/deletions count: the workspace's, of customers in scope, matching channel/staff."""
        parts: list[ColumnElement[bool]] = [
            Relationship.workspace_id == self.workspace_id,
            Relationship.customer_id.in_(self.edge_customers),
        ]
        if self.filters.channel_id is not None:
            parts.append(Relationship.channel_id == self.filters.channel_id)
        if self.filters.staff_id is not None:
            parts.append(Relationship.staff_id == self.filters.staff_id)
        return and_(*parts)

    def staff_condition(self, column: Any) -> ColumnElement[bool]:
        """For staff-level rates: the staff filter, or staff of the store filter, on `column`."""
        if self.filters.staff_id is not None:
            return column == self.filters.staff_id
        if self.filters.store_id is not None:
            return column.in_(select(Staff.id).where(Staff.store_id == self.filters.store_id))
        return true()


def _check_ids(session: Session, workspace_id: int, filters: Filters) -> Segment | None:
    """Every id given must exist in the workspace: `InvalidInput` naming the field otherwise."""
    segment: Segment | None = None
    for name, model in _LOOKUPS.items():
        value = getattr(filters, name)
        if value is None:
            continue
        row = session.scalar(select(model).where(model.id == value, model.workspace_id == workspace_id))
        if row is None:
            raise InvalidInput(f"no such {name.removesuffix('_id')}: {value}", details={"field": name})
        if isinstance(row, Segment):
            if row.archived_at is not None:
                raise InvalidInput(f"segment {value} is archived", details={"field": name})
            segment = row
    return segment


def build_scope(session: Session, *, actor: Actor, filters: Filters, clock: Clock) -> Scope:
    """The SQL for the filters (one lookup query per filter given)."""
    workspace_id = actor.workspace_id
    segment = _check_ids(session, workspace_id, filters)
    common: list[ColumnElement[bool]] = [Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)]
    if filters.store_id is not None:
        common.append(Customer.owner_staff_id.in_(select(Staff.id).where(Staff.store_id == filters.store_id)))
    if filters.tag_id is not None:
        common.append(
            Customer.id.in_(
                select(CustomerTag.customer_id).where(
                    CustomerTag.workspace_id == workspace_id, CustomerTag.tag_id == filters.tag_id
                )
            )
        )
    if segment is not None:
        common.append(Customer.id.in_(member_ids(session, segment, now=clock.now())))
    customer_only = list(common)
    if filters.staff_id is not None:
        customer_only.append(Customer.owner_staff_id == filters.staff_id)
    if filters.channel_id is not None:
        customer_only.append(
            Customer.id.in_(
                select(Relationship.customer_id).where(
                    Relationship.workspace_id == workspace_id, Relationship.channel_id == filters.channel_id
                )
            )
        )
    return Scope(
        workspace_id=workspace_id,
        filters=filters,
        customers=select(Customer.id).where(*customer_only),
        edge_customers=select(Customer.id).where(*common),
    )
