"""What the sidebar shows and does for one staff member and the customer of the open chat.

A staff member sees a customer only while they have an open friend edge (`Relationship` with
`removed_at` null) with them; anyone else's customer is `NotYourCustomer` (403). Services take a
session and never commit.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.addtasks.service import today as local_today
from siyu.auth.permissions import Actor
from siyu.campaigns.calendars.scripts import preview_script
from siyu.customers.service import tags as tag_service
from siyu.customers.service.timeline import system_event
from siyu.db import Database
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.status import note_error
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound, PermissionDenied
from siyu.loyalty.h5.reading import available_points, member_of, tier_of, unused_coupon_count
from siyu.messaging import content as content_service
from siyu.models import (
    AddTask,
    AddTaskStatus,
    ContentItem,
    Coupon,
    CouponTemplate,
    Customer,
    CustomerEvent,
    CustomerTag,
    Identity,
    IdentityType,
    Order,
    Relationship,
    Script,
    Staff,
    StaffTask,
    StaffTaskStatus,
    Tag,
    TagGroup,
    TagSource,
    Workspace,
)
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)

MAX_NOTE = 1000
NOTE_EVENT = "note.added"
SENT_EVENT = "sidebar.sent"
LIST_LIMIT = 20


class NotYourCustomer(PermissionDenied):
    """The customer is not (or no longer) a friend of this staff member."""

    code = "sidebar_not_your_customer"


class UnknownContact(NotFound):
    """No customer in the pool holds this external_userid (not synchronised yet)."""

    code = "sidebar_unknown_contact"


@dataclass
class CustomerCard:
    """Everything the customer tab shows."""

    customer: Customer
    identities: list[Identity]
    tags: list[Tag]
    tag_groups: list[tuple[TagGroup, list[Tag]]]
    tier: str | None
    points: int
    coupons: list[tuple[Coupon, CouponTemplate]]
    unused_coupons: int
    orders: list[Order]
    timeline: list[CustomerEvent]
    notes: list[CustomerEvent]
    relationship: Relationship


@dataclass
class Sendable:
    """A script or content item rendered for the customer, ready for `sendChatMessage`."""

    kind: str  # "script" or "content"
    id: int
    title: str
    text: str
    message: dict[str, Any]
    error: str | None = None
    unsupported: bool = False  # e.g. an image: sendChatMessage needs a WeCom media upload siyu does not do


@dataclass
class StaffWork:
    """The staff member's due SOP tasks and today's add-by-phone tasks."""

    tasks: list[StaffTask] = field(default_factory=list)
    add_tasks: list[AddTask] = field(default_factory=list)


def actor_for(staff: Staff) -> Actor:
    """The actor sidebar changes are recorded as (audit label names the staff member)."""
    return Actor.system(staff.workspace_id, label=f"sidebar:{staff.name}")


def customer_by_external_userid(session: Session, workspace_id: int, external_userid: str) -> Customer:
    """The live customer holding the WeCom external_userid (following merges); `UnknownContact` if none."""
    external_userid = external_userid.strip()
    if not external_userid:
        raise InvalidInput("eu is required", details={"field": "eu"})
    customer = session.scalar(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(
            Identity.workspace_id == workspace_id,
            Identity.type == IdentityType.WECOM_EXTERNAL_USERID,
            Identity.value == external_userid,
        )
    )
    hops = 0
    while customer is not None and customer.merged_into_id is not None and hops < 10:
        customer = session.get(Customer, customer.merged_into_id)
        hops += 1
    if customer is None or customer.merged_into_id is not None or customer.erased_at is not None:
        raise UnknownContact("no customer with this external_userid", details={"field": "eu"})
    return customer


def open_edge(session: Session, staff: Staff, customer_id: int) -> Relationship:
    """The staff member's open friend edge with the customer; `NotYourCustomer` without one."""
    edge = session.scalar(
        select(Relationship)
        .where(
            Relationship.workspace_id == staff.workspace_id,
            Relationship.staff_id == staff.id,
            Relationship.customer_id == customer_id,
            Relationship.removed_at.is_(None),
        )
        .order_by(Relationship.added_at.desc())
        .limit(1)
    )
    if edge is None:
        raise NotYourCustomer("this customer is not your friend", details={"customer_id": customer_id})
    return edge


def own_customer(session: Session, staff: Staff, customer_id: int) -> tuple[Customer, Relationship]:
    """A customer of this staff member by id (403 when not theirs, 404 when gone)."""
    customer = session.scalar(
        select(Customer).where(Customer.workspace_id == staff.workspace_id, Customer.id == customer_id)
    )
    if customer is None or customer.merged_into_id is not None or customer.erased_at is not None:
        raise NotFound("customer not found", details={"field": "customer_id"})
    return customer, open_edge(session, staff, customer.id)


def customer_card(session: Session, staff: Staff, customer_id: int, *, clock: Clock) -> CustomerCard:
    """The customer tab: profile, identities, tags, tier, points, coupons, orders, timeline, notes."""
    customer, edge = own_customer(session, staff, customer_id)
    ws = staff.workspace_id
    identities = list(
        session.scalars(select(Identity).where(Identity.customer_id == customer.id).order_by(Identity.type))
    )
    tags = [tag for _link, tag in tag_service.tags_of(session, customer.id)]
    groups = [(group, [tag for tag, _count in items]) for group, items in tag_service.list_groups(session, ws)]
    member = member_of(session, workspace_id=ws, customer_id=customer.id)
    tier = tier_of(session, member, ws) if member is not None else None
    coupons = [
        (c, t)
        for c, t in session.execute(
            select(Coupon, CouponTemplate)
            .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
            .where(Coupon.workspace_id == ws, Coupon.customer_id == customer.id)
            .order_by(Coupon.id.desc())
            .limit(LIST_LIMIT)
        ).all()
    ]
    orders = list(
        session.scalars(
            select(Order)
            .where(Order.workspace_id == ws, Order.customer_id == customer.id)
            .order_by(Order.paid_at.desc())
            .limit(LIST_LIMIT)
        )
    )
    timeline = list(
        session.scalars(
            select(CustomerEvent)
            .where(CustomerEvent.customer_id == customer.id, CustomerEvent.type != NOTE_EVENT)
            .order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc())
            .limit(LIST_LIMIT)
        )
    )
    notes = list(
        session.scalars(
            select(CustomerEvent)
            .where(CustomerEvent.customer_id == customer.id, CustomerEvent.type == NOTE_EVENT)
            .order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc())
            .limit(LIST_LIMIT)
        )
    )
    return CustomerCard(
        customer=customer,
        identities=identities,
        tags=tags,
        tag_groups=groups,
        tier=tier.name if tier is not None else None,
        points=available_points(session, member, clock=clock) if member is not None else 0,
        coupons=coupons,
        unused_coupons=unused_coupon_count(session, workspace_id=ws, customer_id=customer.id, clock=clock),
        orders=orders,
        timeline=timeline,
        notes=notes,
        relationship=edge,
    )


def add_note(
    session: Session, staff: Staff, customer_id: int, text: str, *, clock: Clock, nonce: str = ""
) -> CustomerEvent:
    """A staff note on the customer's timeline (`note.added`, with the author).

    `nonce` is the note form's one-time value: the same form posted twice (a double tap, a resent
    request) adds one note. Without one, every call adds a note."""
    customer, _edge = own_customer(session, staff, customer_id)
    text = text.strip()
    if not text:
        raise InvalidInput("note is empty", details={"field": "text"})
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"note is longer than {MAX_NOTE} characters", details={"field": "text"})
    now = clock.now()
    nonce = nonce.strip()[:100] or secrets.token_urlsafe(18)
    digest = hashlib.sha256(f"{staff.id}|{customer.id}|{nonce}".encode()).hexdigest()[:32]
    key = f"sidebar-note:{digest}"
    lookup = select(CustomerEvent).where(
        CustomerEvent.workspace_id == customer.workspace_id, CustomerEvent.idempotency_key == key
    )
    existing = session.scalar(lookup)
    if existing is not None:  # the same form posted again (double tap)
        return existing
    try:
        with session.begin_nested():
            system_event(
                session,
                customer,
                NOTE_EVENT,
                key,
                now,
                clock,
                {"text": text, "staff_id": staff.id, "staff_name": staff.name},
            )
            session.flush()
    except IntegrityError:
        pass  # the twin request won the race
    event = session.scalar(lookup)
    assert event is not None
    return event


@dataclass
class TagMark:
    """A `mark_tag` still to send to WeCom, once the tag change is committed."""

    workspace_id: int
    customer_id: int
    body: dict[str, Any]
    added: list[int]
    removed: list[int]
    """siyu's ids of the WeCom-linked tags added / removed (queued again if WeCom asks to retry)."""


@dataclass
class TagChange:
    """What `set_tags` did, and whether WeCom followed (`wecom_error` is shown on the page).
    `mark` is the `mark_tag` call `mark_tags` makes after the commit (None when nothing to mirror)."""

    added: list[int]
    removed: list[int]
    wecom_error: str | None = None
    mark: TagMark | None = None


def set_tags(
    session: Session,
    staff: Staff,
    customer_id: int,
    tag_ids: list[int],
    *,
    original: list[int],
    external_userid: str = "",
    clock: Clock,
    config: WecomConfig | None,
) -> TagChange:
    """Apply the staff member's edit of the tag form: `tag_ids` are the ticked tags, `original` the
    tags the form showed as ticked. Only the difference is applied (added = ticked − original,
    removed = original − ticked) through the tag service, so tags someone else added or removed in the
    meantime are left alone. Unknown tag ids → 400 naming `tag_id`, nothing written.

    WeCom-linked tags of the difference are to be mirrored with `externalcontact/mark_tag` on this
    staff member's edge with `external_userid`, the open chat's contact (must be one of the
    customer's; with `config`, required). WeCom is not called here: the call is returned as
    `change.mark`, for `mark_tags` to make once this transaction is committed."""
    customer, _edge = own_customer(session, staff, customer_id)
    ticked, shown = set(tag_ids), set(original)
    wanted = ticked | shown
    known = {
        t.id: t for t in session.scalars(select(Tag).where(Tag.workspace_id == staff.workspace_id, Tag.id.in_(wanted)))
    }
    unknown = sorted(wanted - set(known))
    if unknown:
        raise InvalidInput(f"unknown tag ids {unknown}", details={"field": "tag_id"})
    external_userid = external_userid.strip()
    if config is not None or external_userid:
        if not external_userid:
            raise InvalidInput("eu is required", details={"field": "eu"})
        try:
            holder = customer_by_external_userid(session, staff.workspace_id, external_userid)
        except UnknownContact:
            holder = None
        if holder is None or holder.id != customer.id:
            raise InvalidInput("eu is not this customer's WeCom contact", details={"field": "eu"})
    actor = actor_for(staff)
    added = sorted(ticked - shown)
    removed = sorted(shown - ticked)
    for tag_id in added:
        # Listeners stay quiet when WeCom is configured: the change is mirrored on the chat's contact.
        tag_service.assign_tag(
            session,
            actor=actor,
            customer_id=customer.id,
            tag_id=tag_id,
            clock=clock,
            source=TagSource.MANUAL,
            notify=config is None,
        )
    for tag_id in removed:
        tag_service.remove_tag(
            session, actor=actor, customer_id=customer.id, tag_id=tag_id, clock=clock, notify=config is None
        )
    change = TagChange(added=added, removed=removed)
    if config is not None and (added or removed):
        change.mark = _tag_mark(session, staff, customer, external_userid, added, removed)
    return change


def _tag_mark(
    session: Session, staff: Staff, customer: Customer, external_userid: str, added: list[int], removed: list[int]
) -> TagMark | None:
    ids = set(added) | set(removed)
    wecom_ids = dict(
        session.execute(select(Tag.id, Tag.wecom_tag_id).where(Tag.id.in_(ids), Tag.wecom_tag_id.is_not(None))).all()
    )
    add_ids = [wecom_ids[i] for i in added if i in wecom_ids]
    remove_ids = [wecom_ids[i] for i in removed if i in wecom_ids]
    if not (add_ids or remove_ids) or not external_userid or not staff.wecom_user_id:
        return None
    body: dict[str, Any] = {"userid": staff.wecom_user_id, "external_userid": external_userid}
    if add_ids:
        body["add_tag"] = add_ids
    if remove_ids:
        body["remove_tag"] = remove_ids
    return TagMark(
        workspace_id=staff.workspace_id,
        customer_id=customer.id,
        body=body,
        added=[i for i in added if i in wecom_ids],
        removed=[i for i in removed if i in wecom_ids],
    )


def mark_tags(database: Database, change: TagChange, *, clock: Clock, config: WecomConfig | None) -> TagChange:
    """Send `change.mark` to WeCom (`externalcontact/mark_tag`), to be called with no transaction
    open, after `set_tags`' transaction committed. A WeCom failure keeps siyu's change: it is
    recorded (`status.note_error`) in a short transaction of its own and returned as
    `change.wecom_error` for the page; a retryable one is handed to the tag sync's `mark_tag` job."""
    mark = change.mark
    if mark is None or config is None:
        return change
    change.mark = None
    try:
        client_for(config, secret="contact").call("POST", "externalcontact/mark_tag", data=mark.body)
    except (WecomError, NotConfigured) as exc:
        with database.transaction() as session:
            bind_workspace(session, mark.workspace_id)
            note_error(session, mark.workspace_id, exc, clock)
            if isinstance(exc, WecomError) and exc.retryable:
                changes = [(i, True) for i in mark.added] + [(i, False) for i in mark.removed]
                _retry_later(session, mark.workspace_id, mark.customer_id, changes, clock=clock)
        change.wecom_error = str(exc)
    return change


def _retry_later(
    session: Session, workspace_id: int, customer_id: int, changes: list[tuple[int, bool]], *, clock: Clock
) -> None:
    """Queue the tag sync's `mark_tag` job (H2: retried by the periodic sync while retryable) for each
    change; without the tag sync module the error stays on the integration page only."""
    if not changes:
        return
    try:
        from siyu.integrations.wecom.tags import tasks as _tag_tasks  # noqa: F401  (registers the job kind)
        from siyu.integrations.wecom.tags.customers import MARK_KIND
    except ImportError:  # pragma: no cover - the tag sync is part of the same release
        logger.warning("mark_tag retry not queued: tag sync module missing")
        return
    from siyu.jobs.service import enqueue

    for tag_id, is_added in changes:
        enqueue(
            session,
            kind=MARK_KIND,
            args={"customer_id": customer_id, "tag_id": tag_id, "is_added": is_added},
            workspace_id=workspace_id,
            clock=clock,
            created_by="wecom_sidebar",
        )


def _variables(session: Session, staff: Staff, customer: Customer, names: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {"staff_name": staff.name}
    values.update(content_service.load_variables(session, staff.workspace_id, [customer], names)[customer.id])
    return values


def sendables(session: Session, staff: Staff, customer_id: int) -> list[Sendable]:
    """Scripts (话术) and content library items rendered for this customer, scripts first."""
    customer, _edge = own_customer(session, staff, customer_id)
    actor = actor_for(staff)
    items: list[Sendable] = []
    scripts = session.scalars(
        select(Script).where(Script.workspace_id == staff.workspace_id).order_by(Script.stage, Script.title)
    )
    for script in scripts:
        try:
            text, _names = preview_script(session, actor=actor, script_id=script.id, customer_id=customer.id)
            items.append(
                Sendable("script", script.id, script.title, text, {"msgtype": "text", "text": {"content": text}})
            )
        except InvalidInput as exc:
            items.append(Sendable("script", script.id, script.title, "", {}, error=exc.message))
    contents = session.scalars(
        select(ContentItem)
        .where(ContentItem.workspace_id == staff.workspace_id, ContentItem.archived_at.is_(None))
        .order_by(ContentItem.name)
        .limit(LIST_LIMIT * 5)
    )
    for item in contents:
        try:
            rendered = content_service.render(
                item, _variables(session, staff, customer, content_service.check_content(item))
            )
        except (content_service.RenderError, InvalidInput) as exc:
            items.append(Sendable("content", item.id, item.name, "", {}, error=str(exc)))
            continue
        message = chat_message(rendered)
        text = rendered.get("text", "")
        if not message:
            items.append(Sendable("content", item.id, item.name, text, {}, unsupported=True))
            continue
        items.append(Sendable("content", item.id, item.name, text, message))
    return items


def chat_message(rendered: dict[str, Any]) -> dict[str, Any]:
    """A rendered content item as `sendChatMessage` arguments (text, link card, mini-program); `{}` when
    the sidebar cannot send it (an image or other attachment needs a WeCom media upload first, a link
    or mini-program item without its target, or nothing to say)."""
    kind = rendered.get("kind")
    if kind == "link" and rendered.get("link"):
        return {
            "msgtype": "news",
            "news": {
                "link": rendered["link"],
                "title": rendered.get("title") or "",
                "desc": rendered.get("description") or rendered.get("text", ""),
                "imgUrl": rendered.get("media_url") or "",
            },
        }
    if kind == "miniprogram" and rendered.get("miniprogram"):
        mini = rendered["miniprogram"]
        return {
            "msgtype": "miniprogram",
            "miniprogram": {
                "appid": mini["appid"],
                "title": rendered.get("title") or "",
                "imgUrl": rendered.get("media_url") or "",
                "page": mini["page"],
            },
        }
    if kind not in (None, "text") or not rendered.get("text"):
        return {}
    return {"msgtype": "text", "text": {"content": rendered["text"]}}


def record_sent(session: Session, staff: Staff, customer_id: int, kind: str, item_id: int, *, clock: Clock) -> None:
    """Note on the customer's timeline that the staff member sent a script / content item."""
    if kind not in ("script", "content"):
        raise InvalidInput("kind must be script or content", details={"field": "kind"})
    customer, _edge = own_customer(session, staff, customer_id)
    model = Script if kind == "script" else ContentItem
    title_column = Script.title if kind == "script" else ContentItem.name
    title = session.scalar(select(title_column).where(model.id == item_id, model.workspace_id == staff.workspace_id))
    if title is None:
        raise InvalidInput(f"unknown {kind}", details={"field": "item_id"})
    now = clock.now()
    system_event(
        session,
        customer,
        SENT_EVENT,
        f"sidebar-sent:{staff.id}:{customer.id}:{kind}:{item_id}:{now.isoformat()}",
        now,
        clock,
        {"kind": kind, "item_id": item_id, "title": title, "staff_id": staff.id},
    )
    session.flush()


def staff_work(session: Session, staff: Staff, *, clock: Clock, days_ahead: int = 1) -> StaffWork:
    """Open SOP tasks due by the end of tomorrow (or undated), and add-by-phone tasks due up to today,
    "today" and "tomorrow" in the brand's time zone."""
    today = local_today(session, workspace_id=staff.workspace_id, clock=clock)
    workspace = session.get(Workspace, staff.workspace_id)
    zone = ZoneInfo(workspace.timezone if workspace else "Asia/Shanghai")
    horizon: datetime = datetime.combine(today + timedelta(days=days_ahead + 1), time.min, tzinfo=zone).astimezone(UTC)
    tasks = list(
        session.scalars(
            select(StaffTask)
            .where(
                StaffTask.workspace_id == staff.workspace_id,
                StaffTask.staff_id == staff.id,
                StaffTask.status == StaffTaskStatus.OPEN,
                or_(StaffTask.due_at.is_(None), StaffTask.due_at < horizon),
            )
            .order_by(StaffTask.due_at, StaffTask.id)
            .limit(LIST_LIMIT * 5)
        )
    )
    add_tasks = list(
        session.scalars(
            select(AddTask)
            .where(
                AddTask.workspace_id == staff.workspace_id,
                AddTask.staff_id == staff.id,
                AddTask.status.in_([AddTaskStatus.PENDING, AddTaskStatus.REQUESTED]),
                AddTask.due_on <= today,
            )
            .order_by(AddTask.due_on, AddTask.id)
            .limit(LIST_LIMIT * 5)
        )
    )
    return StaffWork(tasks=tasks, add_tasks=add_tasks)


def customer_tag_ids(session: Session, customer_id: int) -> set[int]:
    """The ids of the customer's tags (for the tag form)."""
    return set(session.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == customer_id)))
