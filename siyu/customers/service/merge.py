"""Merging two profiles of one person, and undoing a merge exactly.

A merge moves every row owned by the merged customer to the survivor, unions tags and
consents (where both have one, the survivor's tag and the most recent consent stay, and the
other is remembered), applies survivorship to profile fields, and marks the merged profile
`merged_into_id`. `undo_data` records each moved id and each dropped row, so `undo_merge`
puts everything back; a field edited after the merge keeps its newer value.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.customers.errors import CustomerErased, CustomerNotFound, MergeNotUndoable
from siyu.customers.service import survivorship
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import InvalidInput, NotFound
from siyu.models import (
    Consent,
    ConsentChannel,
    ConsentStatus,
    Customer,
    CustomerEvent,
    CustomerMerge,
    CustomerTag,
    ExperimentExposure,
    Identity,
    LiveCodeScan,
    Order,
    Relationship,
    ShortLinkClick,
    Tag,
    TagSource,
    Workspace,
)
from siyu.models.customer import PROFILE_FIELDS

# Tables whose rows simply follow their customer. Later areas (orders, points…) register theirs.
MOVABLE: list[Any] = [
    Identity,
    CustomerEvent,
    Relationship,
    Order,
    LiveCodeScan,
    ShortLinkClick,
    ExperimentExposure,
]


class MergeListener(Protocol):
    def __call__(
        self, session: Session, *, workspace_id: int, survivor_id: int, merged_id: int, clock: Clock
    ) -> None: ...


MERGE_LISTENERS: list[MergeListener] = []


def register_merge_listener(listener: MergeListener) -> MergeListener:
    """Run `listener` inside every merge, after rows moved and before the merge is recorded: for areas
    whose rows cannot simply follow `customer_id` (a loyalty account is one per customer: two fold)."""
    if listener not in MERGE_LISTENERS:
        MERGE_LISTENERS.append(listener)
    return listener


def register_movable(model: Any) -> None:
    """Let a table with a `customer_id` column follow merges and their undo."""
    if model not in MOVABLE:
        MOVABLE.append(model)


def _move_rows(
    session: Session, model: Any, source_id: int, target_id: int, ids: Sequence[int] | None = None
) -> list[int]:
    query = select(model.id).where(model.customer_id == source_id)
    if ids is not None:
        query = query.where(model.id.in_(ids))
    moved = list(session.scalars(query))
    if moved:
        session.execute(
            update(model).where(model.id.in_(moved)).values(customer_id=target_id),
            execution_options={"synchronize_session": False},
        )
    return moved


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat()


def merge_customers(
    session: Session, *, actor: Actor, survivor_id: int, merged_id: int, reason: str, clock: Clock
) -> CustomerMerge:
    """Merge `merged_id` into `survivor_id` in the caller's transaction."""
    actor.require(Scope.CUSTOMERS_WRITE)
    if survivor_id == merged_id:
        raise InvalidInput("cannot merge a customer into itself", details={"field": "merged_id"})
    locked = {c.id: c for c in repository.lock_customers(session, actor.workspace_id, [survivor_id, merged_id])}
    if survivor_id not in locked or merged_id not in locked:
        raise CustomerNotFound("customer not found")
    survivor, merged = locked[survivor_id], locked[merged_id]
    for customer in (survivor, merged):
        if customer.merged_into_id is not None:
            raise InvalidInput(f"customer {customer.id} was already merged", details={"customer_id": customer.id})
        if customer.erased_at is not None:
            raise CustomerErased(f"customer {customer.id} was erased", details={"customer_id": customer.id})
    # Staff and store managers may only merge customers they can both see.
    repository.get_visible(session, actor, survivor_id)
    repository.get_visible(session, actor, merged_id)

    undo: dict[str, Any] = {
        "survivor_before": survivorship.snapshot(survivor),
        "merged_before": survivorship.snapshot(merged),
        "moved": {},
        "dropped": {},
    }
    session.flush()
    for model in MOVABLE:
        undo["moved"][model.__tablename__] = _move_rows(session, model, merged.id, survivor.id)
    undo["moved"]["customer_tags"], undo["dropped"]["customer_tags"] = _merge_tags(session, survivor, merged)
    undo["moved"]["consents"], undo["dropped"]["consents"] = _merge_consents(session, survivor, merged)
    for listener in MERGE_LISTENERS:
        listener(session, workspace_id=actor.workspace_id, survivor_id=survivor.id, merged_id=merged.id, clock=clock)

    workspace = session.get(Workspace, actor.workspace_id)
    overrides = workspace.survivorship if workspace else {}
    _merge_profile(survivor, merged, overrides)
    now = clock.now()
    survivor.updated_at = now
    merged.merged_into_id = survivor.id
    merged.updated_at = now
    undo["survivor_after"] = survivorship.snapshot(survivor)
    merge = CustomerMerge(
        workspace_id=actor.workspace_id,
        survivor_id=survivor.id,
        merged_id=merged.id,
        reason=reason,
        undo_data=undo,
        merged_at=now,
        merged_by=actor.label,
    )
    session.add(merge)
    session.flush()
    record(
        session,
        actor,
        action="merge",
        entity_type="customer",
        entity_id=survivor.id,
        before={"merged_id": merged.id},
        after={"merge_id": merge.id, "reason": reason},
        clock=clock,
    )
    return merge


def _merge_profile(survivor: Customer, merged: Customer, overrides: dict[str, Any]) -> None:
    stamps = merged.field_updated_at or {}
    names = [*PROFILE_FIELDS, *(survivorship.ATTRIBUTE_PREFIX + key for key in merged.attributes or {})]
    for name in names:
        value = survivorship.current_value(merged, name)
        if survivorship.is_empty(value):
            continue
        # A value set before stamps were kept counts as observed when the profile was created.
        observed = as_utc(datetime.fromisoformat(stamps[name])) if name in stamps else as_utc(merged.created_at)
        if survivorship.wins(survivor, name, observed, overrides):
            survivorship.set_field(survivor, name, value, observed)


def _merge_tags(session: Session, survivor: Customer, merged: Customer) -> tuple[list[int], list[dict[str, Any]]]:
    held = set(session.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == survivor.id)))
    moved: list[int] = []
    dropped: list[dict[str, Any]] = []
    for row in session.scalars(select(CustomerTag).where(CustomerTag.customer_id == merged.id)):
        if row.tag_id in held:
            dropped.append(
                {
                    "tag_id": row.tag_id,
                    "source": row.source,
                    "assigned_at": _iso(row.assigned_at),
                    "assigned_by": row.assigned_by,
                }
            )
            session.delete(row)
        else:
            row.customer_id = survivor.id
            moved.append(row.id)
    session.flush()
    return moved, dropped


def _merge_consents(session: Session, survivor: Customer, merged: Customer) -> tuple[list[int], list[dict[str, Any]]]:
    mine = {c.channel: c for c in session.scalars(select(Consent).where(Consent.customer_id == survivor.id))}
    moved: list[int] = []
    dropped: list[dict[str, Any]] = []
    for row in session.scalars(select(Consent).where(Consent.customer_id == merged.id)):
        current = mine.get(row.channel)
        loser = row
        if current is not None and as_utc(row.changed_at) > as_utc(current.changed_at):
            # The merged profile's answer is newer: it wins, the survivor's is remembered.
            loser = current
        dropped_row = {
            "owner": "merged" if loser is row else "survivor",
            "channel": loser.channel,
            "status": loser.status,
            "source": loser.source,
            "changed_at": _iso(loser.changed_at),
        }
        if current is None:
            row.customer_id = survivor.id
            moved.append(row.id)
            continue
        dropped.append(dropped_row)
        if loser is current:
            current.status, current.source, current.changed_at = row.status, row.source, row.changed_at
        session.delete(row)
    session.flush()
    return moved, dropped


def undo_merge(session: Session, *, actor: Actor, merge_id: int, clock: Clock) -> CustomerMerge:
    """Split a merge apart again: rows go back, dropped rows come back, fields are restored."""
    actor.require(Scope.CUSTOMERS_WRITE)
    merge = session.scalar(
        select(CustomerMerge).where(CustomerMerge.id == merge_id, CustomerMerge.workspace_id == actor.workspace_id)
    )
    if merge is None:
        raise NotFound(f"merge {merge_id} not found")
    if merge.undone_at is not None:
        raise MergeNotUndoable("this merge was already undone")
    if merge.undo_data.get("erased"):
        raise MergeNotUndoable("a profile of this merge was erased on request; it cannot be split again")
    locked = {
        c.id: c for c in repository.lock_customers(session, actor.workspace_id, [merge.survivor_id, merge.merged_id])
    }
    survivor, merged = locked[merge.survivor_id], locked[merge.merged_id]
    repository.get_visible(session, actor, survivor.id)
    if survivor.merged_into_id is not None:
        raise MergeNotUndoable("the survivor was merged again since; undo that merge first")
    if survivor.erased_at is not None:
        raise MergeNotUndoable("the survivor was erased")
    later = session.scalar(
        select(CustomerMerge.id).where(
            CustomerMerge.survivor_id == survivor.id, CustomerMerge.id > merge.id, CustomerMerge.undone_at.is_(None)
        )
    )
    if later is not None:
        raise MergeNotUndoable(
            f"merge {later} into the same customer came later; undo it first", details={"merge_id": later}
        )
    data = merge.undo_data
    for model in MOVABLE:
        _move_rows(session, model, survivor.id, merged.id, data["moved"].get(model.__tablename__, []))
    _move_rows(session, CustomerTag, survivor.id, merged.id, data["moved"].get("customer_tags", []))
    _move_rows(session, Consent, survivor.id, merged.id, data["moved"].get("consents", []))
    existing_tags = set(session.scalars(select(Tag.id).where(Tag.workspace_id == merged.workspace_id)))
    for row in data["dropped"].get("customer_tags", []):
        if row["tag_id"] not in existing_tags:
            continue  # the tag was deleted since; there is nothing to give back
        session.add(
            CustomerTag(
                workspace_id=merged.workspace_id,
                customer_id=merged.id,
                tag_id=row["tag_id"],
                source=TagSource(row["source"]),
                assigned_at=datetime.fromisoformat(row["assigned_at"]),
                assigned_by=row["assigned_by"],
            )
        )
    _restore_consents(session, survivor, merged, data["dropped"].get("consents", []))
    _restore_survivor(survivor, data["survivor_before"], data["survivor_after"])
    now = clock.now()
    merged.merged_into_id = None
    merged.updated_at = survivor.updated_at = now
    merge.undone_at = now
    merge.undone_by = actor.label
    session.flush()
    record(
        session,
        actor,
        action="unmerge",
        entity_type="customer",
        entity_id=survivor.id,
        before={"merge_id": merge.id},
        after={"restored_id": merged.id},
        clock=clock,
    )
    return merge


def _restore_consents(session: Session, survivor: Customer, merged: Customer, dropped: list[dict[str, Any]]) -> None:
    session.flush()
    for row in dropped:
        channel = ConsentChannel(row["channel"])
        values = {
            "status": ConsentStatus(row["status"]),
            "source": row["source"],
            "changed_at": datetime.fromisoformat(row["changed_at"]),
        }
        if row["owner"] == "merged":
            session.add(Consent(workspace_id=merged.workspace_id, customer_id=merged.id, channel=channel, **values))
            continue
        # The survivor's own consent was overwritten by the merged one's: give that back to the
        # merged profile and restore the survivor's.
        current = session.scalar(select(Consent).where(Consent.customer_id == survivor.id, Consent.channel == channel))
        if current is None:
            continue
        session.add(
            Consent(
                workspace_id=merged.workspace_id,
                customer_id=merged.id,
                channel=channel,
                status=current.status,
                source=current.source,
                changed_at=current.changed_at,
            )
        )
        current.status, current.source, current.changed_at = (values["status"], values["source"], values["changed_at"])


def _restore_survivor(survivor: Customer, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Restore fields the merge changed, unless someone changed them again since."""
    current = survivorship.snapshot(survivor)
    restored = dict(current)
    for name in PROFILE_FIELDS:
        if current.get(name) == after.get(name):
            restored[name] = before.get(name)
            stamp = before["field_updated_at"].get(name)
            restored["field_updated_at"] = {k: v for k, v in restored["field_updated_at"].items() if k != name}
            if stamp:
                restored["field_updated_at"][name] = stamp
    attrs = dict(current["attributes"])
    for key in set(after["attributes"]) | set(before["attributes"]):
        if attrs.get(key) == after["attributes"].get(key):
            if key in before["attributes"]:
                attrs[key] = before["attributes"][key]
            else:
                attrs.pop(key, None)
    restored["attributes"] = attrs
    survivorship.restore(survivor, restored)


def merges_of(session: Session, *, actor: Actor, customer_id: int) -> list[CustomerMerge]:
    """The merge history of a customer, as survivor or as the merged side, newest first."""
    repository.get_visible(session, actor, customer_id)
    return list(
        session.scalars(
            select(CustomerMerge)
            .where(
                CustomerMerge.workspace_id == actor.workspace_id,
                (CustomerMerge.survivor_id == customer_id) | (CustomerMerge.merged_id == customer_id),
            )
            .order_by(CustomerMerge.id.desc())
        )
    )


def merge_by_request(
    session: Session, *, actor: Actor, survivor_id: int, merged_id: int, clock: Clock
) -> CustomerMerge:
    """A merge asked for by a person (console or API): needs the merge permission."""
    actor.require(Scope.CUSTOMERS_MERGE)
    return merge_customers(
        session, actor=actor, survivor_id=survivor_id, merged_id=merged_id, reason="manual", clock=clock
    )
