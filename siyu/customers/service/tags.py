"""Tag groups, tags, and tagging customers one by one or in bulk by filter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import delete, exists, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.customers.repository import CustomerFilter
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound
from siyu.models import Customer, CustomerTag, Tag, TagGroup, TagSource


class TagListener(Protocol):
    def __call__(
        self, session: Session, *, workspace_id: int, customer_id: int, tag_id: int, is_added: bool, clock: Clock
    ) -> None: ...


_listeners: list[TagListener] = []


def register_tag_listener(listener: TagListener) -> TagListener:
    """Call `listener` in the transaction whenever `assign_tag` / `remove_tag` changes a customer's tag
    (the WeCom tag sync queues `mark_tag` this way). Registering the same listener twice is a no-op."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


class BulkTagListener(Protocol):
    def __call__(
        self,
        session: Session,
        *,
        workspace_id: int,
        customer_ids: Sequence[int],
        tag_id: int,
        is_added: bool,
        clock: Clock,
    ) -> None: ...


_bulk_listeners: list[BulkTagListener] = []


def register_bulk_tag_listener(listener: BulkTagListener) -> BulkTagListener:
    """Call `listener` in the transaction with the customers `bulk_tag` / `bulk_untag` changed (one
    call per bulk action, so a listener can queue one job instead of one per customer)."""
    if listener not in _bulk_listeners:
        _bulk_listeners.append(listener)
    return listener


def _notify_bulk(
    session: Session, workspace_id: int, customer_ids: Sequence[int], tag_id: int, is_added: bool, clock: Clock
) -> None:
    if not customer_ids:
        return
    for listener in _bulk_listeners:
        listener(
            session,
            workspace_id=workspace_id,
            customer_ids=customer_ids,
            tag_id=tag_id,
            is_added=is_added,
            clock=clock,
        )


def _notify(session: Session, workspace_id: int, customer_id: int, tag_id: int, is_added: bool, clock: Clock) -> None:
    for listener in _listeners:
        listener(
            session, workspace_id=workspace_id, customer_id=customer_id, tag_id=tag_id, is_added=is_added, clock=clock
        )


def create_group(session: Session, *, actor: Actor, name: str, clock: Clock, sort_order: int = 0) -> TagGroup:
    actor.require(Scope.TAGS_MANAGE)
    name = name.strip()
    if not name:
        raise InvalidInput("name is required", details={"field": "name"})
    if (
        session.scalar(select(TagGroup.id).where(TagGroup.workspace_id == actor.workspace_id, TagGroup.name == name))
        is not None
    ):
        raise Conflict(f"tag group {name!r} exists", details={"field": "name"})
    group = TagGroup(workspace_id=actor.workspace_id, name=name, sort_order=sort_order)
    session.add(group)
    session.flush()
    record(
        session, actor, action="create", entity_type="tag_group", entity_id=group.id, after={"name": name}, clock=clock
    )
    return group


def create_tag(
    session: Session, *, actor: Actor, group_id: int, name: str, clock: Clock, color: str | None = None
) -> Tag:
    actor.require(Scope.TAGS_MANAGE)
    name = name.strip()
    if not name:
        raise InvalidInput("name is required", details={"field": "name"})
    if (
        session.scalar(select(TagGroup.id).where(TagGroup.id == group_id, TagGroup.workspace_id == actor.workspace_id))
        is None
    ):
        raise InvalidInput("unknown tag group", details={"field": "group_id"})
    if (
        session.scalar(
            select(Tag.id).where(Tag.workspace_id == actor.workspace_id, Tag.group_id == group_id, Tag.name == name)
        )
        is not None
    ):
        raise Conflict(f"tag {name!r} exists in this group", details={"field": "name"})
    tag = Tag(workspace_id=actor.workspace_id, group_id=group_id, name=name, color=color)
    session.add(tag)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="tag",
        entity_id=tag.id,
        after={"name": name, "group_id": group_id},
        clock=clock,
    )
    return tag


def delete_tag(session: Session, *, actor: Actor, tag_id: int, clock: Clock) -> None:
    actor.require(Scope.TAGS_MANAGE)
    tag = get_tag(session, actor.workspace_id, tag_id)
    count = session.scalar(select(func.count()).where(CustomerTag.tag_id == tag.id))
    session.delete(tag)
    session.flush()
    record(
        session,
        actor,
        action="delete",
        entity_type="tag",
        entity_id=tag_id,
        before={"name": tag.name, "customers": count},
        clock=clock,
    )


def get_tag(session: Session, workspace_id: int, tag_id: int) -> Tag:
    tag = session.scalar(select(Tag).where(Tag.id == tag_id, Tag.workspace_id == workspace_id))
    if tag is None:
        raise NotFound(f"tag {tag_id} not found", details={"field": "tag_id"})
    return tag


def list_groups(session: Session, workspace_id: int) -> list[tuple[TagGroup, list[tuple[Tag, int]]]]:
    """Every group with its tags and how many live customers carry each."""
    counts = dict(
        session.execute(
            select(CustomerTag.tag_id, func.count())
            .join(Customer, Customer.id == CustomerTag.customer_id)
            .where(CustomerTag.workspace_id == workspace_id, Customer.merged_into_id.is_(None))
            .group_by(CustomerTag.tag_id)
        ).all()
    )
    groups = session.scalars(
        select(TagGroup).where(TagGroup.workspace_id == workspace_id).order_by(TagGroup.sort_order, TagGroup.name)
    ).all()
    tags = session.scalars(select(Tag).where(Tag.workspace_id == workspace_id).order_by(Tag.name)).all()
    by_group: dict[int, list[tuple[Tag, int]]] = {}
    for tag in tags:
        by_group.setdefault(tag.group_id, []).append((tag, int(counts.get(tag.id, 0))))
    return [(group, by_group.get(group.id, [])) for group in groups]


def tags_of(session: Session, customer_id: int) -> Sequence[tuple[CustomerTag, Tag]]:
    rows = session.execute(
        select(CustomerTag, Tag)
        .join(Tag, Tag.id == CustomerTag.tag_id)
        .where(CustomerTag.customer_id == customer_id)
        .order_by(Tag.name)
    ).all()
    return [(ct, t) for ct, t in rows]


def assign_tag(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    tag_id: int,
    clock: Clock,
    source: TagSource = TagSource.MANUAL,
    notify: bool = True,
) -> bool:
    """Tag one customer; returns False if it already had the tag. `notify=False` keeps the tag
    listeners quiet (a caller that mirrors the change to WeCom itself, like the chat sidebar)."""
    actor.require(Scope.CUSTOMERS_WRITE)
    customer = repository.get_visible(session, actor, customer_id)
    tag = get_tag(session, actor.workspace_id, tag_id)
    if (
        session.scalar(
            select(CustomerTag.id).where(CustomerTag.customer_id == customer.id, CustomerTag.tag_id == tag.id)
        )
        is not None
    ):
        return False
    try:
        with session.begin_nested():
            session.add(
                CustomerTag(
                    workspace_id=actor.workspace_id,
                    customer_id=customer.id,
                    tag_id=tag.id,
                    source=source,
                    assigned_at=clock.now(),
                    assigned_by=actor.label,
                )
            )
    except IntegrityError:
        return False  # a concurrent request tagged them first
    record(
        session,
        actor,
        action="tag",
        entity_type="customer",
        entity_id=customer.id,
        after={"tag_id": tag.id, "tag": tag.name, "source": str(source)},
        clock=clock,
    )
    if notify:
        _notify(session, actor.workspace_id, customer.id, tag.id, True, clock)
    return True


def remove_tag(
    session: Session, *, actor: Actor, customer_id: int, tag_id: int, clock: Clock, notify: bool = True
) -> bool:
    """Untag one customer; returns False if it did not have the tag."""
    actor.require(Scope.CUSTOMERS_WRITE)
    customer = repository.get_visible(session, actor, customer_id)
    result = session.execute(
        delete(CustomerTag).where(CustomerTag.customer_id == customer.id, CustomerTag.tag_id == tag_id)
    )
    removed = bool(getattr(result, "rowcount", 0))
    if removed:
        record(
            session,
            actor,
            action="untag",
            entity_type="customer",
            entity_id=customer.id,
            before={"tag_id": tag_id},
            clock=clock,
        )
        if notify:
            _notify(session, actor.workspace_id, customer.id, tag_id, False, clock)
    return removed


def bulk_tag(
    session: Session,
    *,
    actor: Actor,
    flt: CustomerFilter,
    tag_id: int,
    clock: Clock,
    source: TagSource = TagSource.MANUAL,
) -> int:
    """Tag every customer the filter selects (within the actor's view) in one statement."""
    actor.require(Scope.TAGS_WRITE)
    tag = get_tag(session, actor.workspace_id, tag_id)
    now = clock.now()
    selection = (
        repository.filtered_query(actor, flt)
        .where(~exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.tag_id == tag.id))
        .with_only_columns(
            literal(actor.workspace_id),
            Customer.id,
            literal(tag.id),
            literal(str(source)),
            literal(now, type_=CustomerTag.__table__.c.assigned_at.type),
            literal(actor.label),
        )
    )
    # RETURNING, not rowcount: PostgreSQL reports -1 rows for INSERT … SELECT through psycopg.
    inserted = session.scalars(
        insert(CustomerTag)
        .from_select(["workspace_id", "customer_id", "tag_id", "source", "assigned_at", "assigned_by"], selection)
        .returning(CustomerTag.customer_id)
    ).all()
    count = len(inserted)
    _notify_bulk(session, actor.workspace_id, list(inserted), tag.id, True, clock)
    record(
        session,
        actor,
        action="bulk_tag",
        entity_type="tag",
        entity_id=tag.id,
        after={"tag": tag.name, "customers": count, "filter": _describe(flt)},
        clock=clock,
    )
    return count


def bulk_untag(session: Session, *, actor: Actor, flt: CustomerFilter, tag_id: int, clock: Clock) -> int:
    """Remove a tag from every customer the filter selects (within the actor's view)."""
    actor.require(Scope.TAGS_WRITE)
    tag = get_tag(session, actor.workspace_id, tag_id)
    selected = repository.filtered_query(actor, flt).with_only_columns(Customer.id)
    removed = session.scalars(
        delete(CustomerTag)
        .where(CustomerTag.tag_id == tag.id, CustomerTag.customer_id.in_(selected))
        .returning(CustomerTag.customer_id),
        execution_options={"synchronize_session": False},
    ).all()
    count = len(removed)
    _notify_bulk(session, actor.workspace_id, list(removed), tag.id, False, clock)
    record(
        session,
        actor,
        action="bulk_untag",
        entity_type="tag",
        entity_id=tag.id,
        after={"tag": tag.name, "customers": count, "filter": _describe(flt)},
        clock=clock,
    )
    return count


def _describe(flt: CustomerFilter) -> dict[str, object]:
    return {
        "q": flt.q,
        "tag_ids": flt.tag_ids,
        "lifecycle_stage": flt.lifecycle_stage,
        "owner_staff_id": flt.owner_staff_id,
    }
