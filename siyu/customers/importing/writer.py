"""Writing validated import rows, a batch at a time, with as few statements as the rules allow.

Rows whose identities are new become customers through Core `executemany` inserts; rows that
match known customers update them under survivorship (and merge them when a row joins several);
identities and tags are added in bulk. Lookups are per batch, filtered by customer id first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers import repository
from siyu.customers.importing.mapping import IGNORE, resolve_mapping
from siyu.customers.importing.reader import SourceFile
from siyu.customers.importing.report import ImportOptions, ImportReport
from siyu.customers.importing.rows import ParsedRow, RowContext, RowGroup, group_rows
from siyu.customers.service.definitions import attribute_definitions, identity_types
from siyu.customers.service.merge import merge_customers
from siyu.customers.service.profile import apply_profile
from siyu.kit.clock import Clock
from siyu.models import Customer, CustomerTag, Identity, LifecycleStage, Staff, Tag, TagGroup, TagSource, Workspace
from siyu.models.customer import PROFILE_FIELDS

logger = logging.getLogger(__name__)

IMPORT_TAG_GROUP = "导入标签"
_IN_CHUNK = 1000
"""Ids per `IN (…)` list: well under SQLite's bound-parameter limit."""
_Owners = dict[tuple[str, str], int]
_CUSTOMERS = cast(Table, Customer.__table__)
_IDENTITIES = cast(Table, Identity.__table__)
_CUSTOMER_TAGS = cast(Table, CustomerTag.__table__)


class BatchWriter:
    """Writes validated rows batch by batch: creates, updates and merges customers, adds identities and tags."""

    def __init__(self, session: Session, actor: Actor, options: ImportOptions, clock: Clock) -> None:
        self.actor = actor
        self.options = options
        self.clock = clock
        self.workspace_id = actor.workspace_id
        self.tag_ids: dict[str, int] = {}
        workspace = session.get(Workspace, actor.workspace_id)
        self.overrides = dict(workspace.survivorship) if workspace else {}

    def context(self, session: Session, source: SourceFile, report: ImportReport, phone_region: str) -> RowContext:
        attributes = attribute_definitions(session, self.workspace_id)
        mapping = resolve_mapping(
            source.headers,
            self.options.mapping,
            identity_types(session, self.workspace_id),
            {k: d.label for k, d in attributes.items()},
        )
        report.mapping = mapping
        report.ignored_columns = [h for h, t in mapping.items() if t == IGNORE]
        staff_by_key: dict[str, int] = {}
        for staff in session.scalars(select(Staff).where(Staff.workspace_id == self.workspace_id)):
            staff_by_key.setdefault(staff.name, staff.id)
            if staff.wecom_user_id:
                staff_by_key[staff.wecom_user_id] = staff.id
        columns = [(i, h, mapping[h]) for i, h in enumerate(source.headers) if mapping.get(h, IGNORE) != IGNORE]
        return RowContext(columns=columns, attributes=attributes, staff_by_key=staff_by_key, phone_region=phone_region)

    # --- tags ------------------------------------------------------------------------------

    def _tag_id(self, session: Session, name: str) -> int:
        if name not in self.tag_ids:
            tag_id = session.scalar(
                select(Tag.id).where(Tag.workspace_id == self.workspace_id, Tag.name == name).order_by(Tag.id).limit(1)
            )
            if tag_id is None:
                group_id = session.scalar(
                    select(TagGroup.id).where(
                        TagGroup.workspace_id == self.workspace_id, TagGroup.name == IMPORT_TAG_GROUP
                    )
                )
                if group_id is None:
                    group = TagGroup(workspace_id=self.workspace_id, name=IMPORT_TAG_GROUP, sort_order=100)
                    session.add(group)
                    session.flush()
                    group_id = group.id
                tag = Tag(workspace_id=self.workspace_id, group_id=group_id, name=name)
                session.add(tag)
                session.flush()
                tag_id = tag.id
            self.tag_ids[name] = tag_id
        return self.tag_ids[name]

    # --- one batch ---------------------------------------------------------------------------

    def apply_batch(self, session: Session, rows: list[ParsedRow], report: ImportReport) -> None:
        """Write a batch of valid rows; counts outcomes into `report`."""
        now = self.clock.now()
        owners = repository.customer_ids_for_identities(
            session, self.workspace_id, (p for r in rows for p in r.identities)
        )
        groups = group_rows(rows, owners)
        self._create(session, [g for g in groups if not g.customer_ids], now, report)
        known = [g for g in groups if len(g.customer_ids) == 1]
        if known:
            self._update_known(session, known, owners, now, report)
        for group in groups:
            if len(group.customer_ids) > 1:
                self._update(session, group, owners, now, report)

    def _create(self, session: Session, groups: list[RowGroup], now: datetime, report: ImportReport) -> None:
        """Insert one customer per group of new rows, with Core executemany (no ORM objects)."""
        if not groups:
            return
        payload = []
        for group in groups:
            draft = _NewCustomer()
            for row in group.rows:
                apply_profile(cast(Customer, draft), row.values, now, self.overrides)
            payload.append(draft.insert_values(self.workspace_id, now))
        ids = session.execute(
            insert(_CUSTOMERS).returning(_CUSTOMERS.c.id, sort_by_parameter_order=True), payload
        ).scalars()
        links = _Links()
        for group, customer_id in zip(groups, ids, strict=True):
            seen: set[tuple[str, str]] = set()
            tags_seen: set[int] = set()
            for position, row in enumerate(group.rows):
                fresh = [p for p in row.identities if p not in seen]
                seen.update(fresh)
                if position == 0:
                    report.created += 1
                elif fresh:
                    report.merged += 1
                else:
                    report.updated += 1
                links.identities.extend(self._identity_row(customer_id, pair, now) for pair in fresh)
                for name in row.tags:
                    tag_id = self._tag_id(session, name)
                    if tag_id not in tags_seen:
                        tags_seen.add(tag_id)
                        links.tags.append(self._tag_row(customer_id, tag_id, now))
        links.insert(session)

    def _update_known(
        self, session: Session, groups: list[RowGroup], owners: _Owners, now: datetime, report: ImportReport
    ) -> None:
        """Apply groups that each hit exactly one known customer: one lock, one identity and one
        tag query for the whole batch, the new identities and tags inserted in bulk."""
        ids = sorted({next(iter(g.customer_ids)) for g in groups})
        customers = {c.id: c for c in repository.lock_customers(session, self.workspace_id, ids)}
        held: dict[int, set[tuple[str, str]]] = {i: set() for i in ids}
        held_tags: dict[int, set[int]] = {i: set() for i in ids}
        # By customer id alone (they were just locked in this workspace): on SQLite a workspace
        # filter here makes the planner prefer the workspace index and scan the whole pool.
        for chunk in _chunks(ids, _IN_CHUNK):
            for customer_id, type_, value, workspace_id in session.execute(
                select(
                    _IDENTITIES.c.customer_id, _IDENTITIES.c.type, _IDENTITIES.c.value, _IDENTITIES.c.workspace_id
                ).where(_IDENTITIES.c.customer_id.in_(chunk))
            ):
                if workspace_id == self.workspace_id:
                    held[customer_id].add((type_, value))
            for customer_id, tag_id, workspace_id in session.execute(
                select(_CUSTOMER_TAGS.c.customer_id, _CUSTOMER_TAGS.c.tag_id, _CUSTOMER_TAGS.c.workspace_id).where(
                    _CUSTOMER_TAGS.c.customer_id.in_(chunk)
                )
            ):
                if workspace_id == self.workspace_id:
                    held_tags[customer_id].add(tag_id)
        links = _Links()
        for group in groups:
            survivor = customers[next(iter(group.customer_ids))]
            if survivor.erased_at is not None:
                for row in group.rows:
                    report.reject(row.line, "", f"customer {survivor.id} was erased on request; not re-imported")
                continue
            self._apply_rows(
                session, survivor, group.rows, held[survivor.id], held_tags[survivor.id], owners, now, report, links
            )
        session.flush()
        links.insert(session)

    def _update(self, session: Session, group: RowGroup, owners: _Owners, now: datetime, report: ImportReport) -> None:
        """Apply a group whose rows join several known customers: merge them into the oldest."""
        ids = sorted(group.customer_ids)
        customers = repository.lock_customers(session, self.workspace_id, ids)
        survivor = customers[0]
        if survivor.erased_at is not None:
            for row in group.rows:
                report.reject(row.line, "", f"customer {survivor.id} was erased on request; not re-imported")
            return
        for other in customers[1:]:
            merge_customers(
                session,
                actor=self.actor,
                survivor_id=survivor.id,
                merged_id=other.id,
                reason=f"import:{self.options.source}",
                clock=self.clock,
            )
        held = {(i.type, i.value) for i in repository.identities_of(session, survivor.id)}
        held_tags = set(session.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == survivor.id)))
        links = _Links()
        self._apply_rows(session, survivor, group.rows, held, held_tags, owners, now, report, links)
        session.flush()
        links.insert(session)

    def _apply_rows(
        self,
        session: Session,
        survivor: Customer,
        rows: list[ParsedRow],
        held: set[tuple[str, str]],
        held_tags: set[int],
        owners: _Owners,
        now: datetime,
        report: ImportReport,
        links: _Links,
    ) -> None:
        """Rows of one group onto its known customer, in file order: survivorship for the
        fields, the identities and tags it does not hold yet collected for a bulk insert."""
        for row in rows:
            changed = apply_profile(survivor, row.values, now, self.overrides)
            fresh = [p for p in row.identities if p not in held]
            held.update(fresh)
            links.identities.extend(self._identity_row(survivor.id, pair, now) for pair in fresh)
            for name in row.tags:
                tag_id = self._tag_id(session, name)
                if tag_id not in held_tags:
                    held_tags.add(tag_id)
                    links.tags.append(self._tag_row(survivor.id, tag_id, now))
            if changed:
                survivor.updated_at = now
            # A row that brings a new identity, or joins several known customers, merged.
            if fresh or len({owners[p] for p in row.identities if p in owners}) > 1:
                report.merged += 1
            else:
                report.updated += 1

    def _identity_row(self, customer_id: int, pair: tuple[str, str], now: datetime) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "customer_id": customer_id,
            "type": pair[0],
            "value": pair[1],
            "source": self.options.source,
            "created_at": now,
        }

    def _tag_row(self, customer_id: int, tag_id: int, now: datetime) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "customer_id": customer_id,
            "tag_id": tag_id,
            "source": TagSource.IMPORT,
            "assigned_at": now,
            "assigned_by": self.actor.label,
        }


@dataclass
class _Links:
    """Identity and tag rows collected while applying a batch, inserted with one executemany each."""

    identities: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)

    def insert(self, session: Session) -> None:
        if self.identities:
            session.execute(insert(_IDENTITIES), self.identities)
        if self.tags:
            session.execute(insert(_CUSTOMER_TAGS), self.tags)


class _NewCustomer:
    """The profile of a customer about to be created: what `apply_profile` reads and writes,
    without the cost of an ORM instance per row (the row is inserted with Core)."""

    __slots__ = ("attributes", "field_updated_at", *PROFILE_FIELDS)

    def __init__(self) -> None:
        for name in PROFILE_FIELDS:
            setattr(self, name, None)
        self.lifecycle_stage = LifecycleStage.NEW
        self.attributes: dict[str, Any] = {}
        self.field_updated_at: dict[str, Any] = {}

    def insert_values(self, workspace_id: int, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {name: getattr(self, name) for name in PROFILE_FIELDS}
        values.update(
            workspace_id=workspace_id,
            attributes=self.attributes,
            field_updated_at=self.field_updated_at,
            created_at=now,
            updated_at=now,
        )
        return values


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
