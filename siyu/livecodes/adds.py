"""A customer adds a staff member (or joins a group) through a live code.

`record_add` is the one entry point for an add, whoever reports it: the embedded landing page's
simulated add today, the WeCom `add_external_contact` callback later. It resolves the customer,
opens the friend edge attributed to the code's channel (decoded from the `state`), applies the
code's auto-tags, renders the welcome message, converts the experiment exposure, and ticks off a
matching add-by-phone task. Reported twice, it changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, true, update
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.profile import IngestOutcome, ProfileInput, ingest_customer
from siyu.customers.service.tags import assign_tag
from siyu.customers.service.timeline import add_relationship, system_event
from siyu.experiments.assignment import convert
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.kit.ids import sha256_hex
from siyu.livecodes.state import decode_state
from siyu.livecodes.welcome import WelcomeMessage, render_welcome
from siyu.models import (
    Channel,
    CommunityGroup,
    Customer,
    ExperimentVariant,
    IdentityType,
    LiveCode,
    LiveCodeScan,
    LiveCodeTag,
    Relationship,
    Staff,
    Store,
    TagSource,
)

SCAN_CLAIM_WINDOW = timedelta(hours=1)
"""An add reported without its scan claims the latest unclaimed scan of the same code, staff and arm
this recent: WeCom's callback carries the state, not the visitor."""


@dataclass
class AddOutcome:
    customer: Customer
    relationship: Relationship
    is_new_customer: bool
    already_friends: bool
    live_code: LiveCode | None = None
    channel: Channel | None = None
    variant: str | None = None
    scan: LiveCodeScan | None = None
    welcome: WelcomeMessage | None = None
    tags_applied: list[int] = field(default_factory=list)


def simulated_external_userid(visitor_id: str) -> str:
    """A stable stand-in for WeCom's external_userid in embedded mode: one per visitor."""
    return "wmSIM" + sha256_hex(visitor_id)[:27]


def _customer(
    session: Session,
    actor: Actor,
    *,
    external_userid: str,
    name: str | None,
    phone: str | None,
    at: datetime,
    clock: Clock,
) -> tuple[Customer, bool]:
    identities = [(str(IdentityType.WECOM_EXTERNAL_USERID), external_userid)]
    values: dict[str, object] = {}
    if name:
        values["name"] = name
    if phone:
        values["phone"] = phone
    result = ingest_customer(
        session,
        actor=actor,
        identities=identities,
        profile=ProfileInput(values=values),
        source="live_code",
        clock=clock,
        observed_at=at,
    )
    return result.customer, result.outcome == IngestOutcome.CREATED


def claim_scan(
    session: Session,
    *,
    code: LiveCode,
    scan_id: int | None,
    staff_id: int | None,
    variant: str | None,
    customer_id: int,
    at: datetime,
    any_staff: bool = False,
) -> LiveCodeScan | None:
    """Link an add (or an official-account follow) to its scan, first claim wins; without a scan id,
    the latest unclaimed scan of the code, arm and staff member (any staff member with `any_staff`:
    a follow has none) in the `SCAN_CLAIM_WINDOW` before `at`."""
    if scan_id is None:
        scan_id = session.scalar(
            select(LiveCodeScan.id)
            .where(
                LiveCodeScan.live_code_id == code.id,
                true() if any_staff else LiveCodeScan.staff_id == staff_id,
                LiveCodeScan.variant.is_(None) if variant is None else LiveCodeScan.variant == variant,
                LiveCodeScan.customer_id.is_(None),
                LiveCodeScan.scanned_at > at - SCAN_CLAIM_WINDOW,
                LiveCodeScan.scanned_at <= at,
            )
            .order_by(LiveCodeScan.id.desc())
            .limit(1)
        )
        if scan_id is None:
            return None
    claimed = session.execute(
        update(LiveCodeScan)
        .where(LiveCodeScan.id == scan_id, LiveCodeScan.live_code_id == code.id, LiveCodeScan.customer_id.is_(None))
        .values(customer_id=customer_id, added_at=at)
        .execution_options(synchronize_session=False)
    )
    if not getattr(claimed, "rowcount", 0):
        return None
    scan = session.get(LiveCodeScan, scan_id)
    if scan is not None:
        session.refresh(scan)
    return scan


def _welcome_context(
    session: Session, customer: Customer, staff: Staff | None, code: LiveCode, channel: Channel | None, hook: str | None
) -> dict[str, str]:
    store_name = ""
    if staff is not None and staff.store_id is not None:
        store_name = session.scalar(select(Store.name).where(Store.id == staff.store_id)) or ""
    return {
        "name": customer.name or "",
        "staff_name": staff.name if staff else "",
        "store_name": store_name,
        "hook": hook or "",
        "channel_name": channel.name if channel else "",
        "code_name": code.name,
    }


def _apply_code(
    session: Session,
    actor: Actor,
    outcome: AddOutcome,
    *,
    code: LiveCode,
    staff: Staff | None,
    scan_id: int | None,
    at: datetime,
    clock: Clock,
    welcome_delivery: str | None = "sandbox",
) -> None:
    """Everything an add through a live code triggers: scan link, experiment, tags, welcome."""
    customer = outcome.customer
    outcome.scan = claim_scan(
        session,
        code=code,
        scan_id=scan_id,
        staff_id=staff.id if staff else None,
        variant=outcome.variant,
        customer_id=customer.id,
        at=at,
    )
    variant_row = None
    if code.experiment_id is not None and outcome.variant is not None:
        variant_row = session.scalar(
            select(ExperimentVariant).where(
                ExperimentVariant.experiment_id == code.experiment_id, ExperimentVariant.key == outcome.variant
            )
        )
        if outcome.scan is not None:
            convert(
                session,
                experiment_id=code.experiment_id,
                visitor_id=outcome.scan.visitor_id,
                at=at,
                customer_id=customer.id,
            )
    for tag_id in session.scalars(select(LiveCodeTag.tag_id).where(LiveCodeTag.live_code_id == code.id)):
        if assign_tag(session, actor=actor, customer_id=customer.id, tag_id=tag_id, clock=clock, source=TagSource.RULE):
            outcome.tags_applied.append(tag_id)
    content = variant_row.content if variant_row is not None else {}
    hook = content.get("hook") or (outcome.channel.hook if outcome.channel else None)
    welcome = render_welcome(
        code.welcome,
        _welcome_context(session, customer, staff, code, outcome.channel, hook),
        text_override=content.get("welcome_text"),
    )
    outcome.welcome = welcome
    if welcome_delivery is not None and (welcome.text or welcome.image_url or welcome.link or welcome.miniprogram):
        system_event(
            session,
            customer,
            "welcome.sent",
            f"welcome:{outcome.relationship.id}",
            at,
            clock,
            {
                "live_code_id": code.id,
                "staff_id": staff.id if staff else None,
                "delivery": welcome_delivery,
                **welcome.as_dict(),
            },
        )


def record_add(
    session: Session,
    *,
    workspace_id: int,
    staff_id: int,
    external_userid: str,
    state: str | None,
    at: datetime,
    clock: Clock,
    scan_id: int | None = None,
    name: str | None = None,
    phone: str | None = None,
    welcome_delivery: str | None = "sandbox",
) -> AddOutcome:
    """A customer added `staff_id`, carrying `state`: attribute, tag, welcome. Idempotent per pair.

    `welcome_delivery` labels the `welcome.sent` timeline event; None writes none (the WeCom callback
    records the real outcome of `send_welcome_msg` itself)."""
    actor = Actor.system(workspace_id, label="live_code")
    staff = session.scalar(select(Staff).where(Staff.id == staff_id, Staff.workspace_id == workspace_id))
    if staff is None:
        raise InvalidInput("unknown staff member", details={"field": "staff_id"})
    decoded = decode_state(state)
    code = None
    if decoded is not None:
        code = session.scalar(
            select(LiveCode).where(LiveCode.id == decoded.live_code_id, LiveCode.workspace_id == workspace_id)
        )
    channel_id = decoded.channel_id if decoded and code else None
    channel = (
        session.scalar(select(Channel).where(Channel.id == channel_id, Channel.workspace_id == workspace_id))
        if channel_id
        else None
    )
    customer, is_new = _customer(
        session, actor, external_userid=external_userid, name=name, phone=phone, at=at, clock=clock
    )
    if (open_edge := _open_edge(session, customer.id, staff.id)) is not None:
        # A retried callback or a double tap on the landing page: nothing happens twice.
        return AddOutcome(customer, open_edge, False, True, live_code=code, channel=channel)
    try:
        edge = add_relationship(
            session,
            actor=actor,
            customer_id=customer.id,
            staff_id=staff.id,
            added_at=at,
            clock=clock,
            channel=channel.name if channel else None,
            live_code_state=state if decoded else None,
            channel_id=channel.id if channel else None,
            live_code_id=code.id if code else None,
            variant=decoded.variant if decoded and code else None,
        )
    except Conflict:
        # A concurrent report of the same add opened the edge between our check and our lock.
        if (open_edge := _open_edge(session, customer.id, staff.id)) is None:
            raise
        return AddOutcome(customer, open_edge, False, True, live_code=code, channel=channel)
    if channel is not None and customer.first_channel is None:
        customer.first_channel = channel.name
    outcome = AddOutcome(
        customer,
        edge,
        is_new_customer=is_new,
        already_friends=False,
        live_code=code,
        channel=channel,
        variant=edge.variant,
    )
    if code is not None:
        _apply_code(
            session,
            actor,
            outcome,
            code=code,
            staff=staff,
            scan_id=scan_id,
            at=at,
            clock=clock,
            welcome_delivery=welcome_delivery,
        )
    _match_add_task(session, workspace_id=workspace_id, customer_id=customer.id, staff_id=staff.id, at=at)
    session.flush()
    for listener in _add_listeners:
        listener(session, outcome, clock)
    return outcome


AddListener = Callable[[Session, AddOutcome, Clock], None]
_add_listeners: list[AddListener] = []


def on_live_code_add(listener: AddListener) -> AddListener:
    """Subscribe `listener(session, outcome, clock)` to a new friend edge opened by `record_add` (not
    to a repeated report of the same add). It runs after the scan was claimed, inside the writer's
    transaction: referrals read `outcome.scan.visitor_id` to find the poster the scanner came from."""
    if listener not in _add_listeners:
        _add_listeners.append(listener)
    return listener


def _open_edge(session: Session, customer_id: int, staff_id: int) -> Relationship | None:
    return session.scalar(
        select(Relationship).where(
            Relationship.customer_id == customer_id,
            Relationship.staff_id == staff_id,
            Relationship.removed_at.is_(None),
        )
    )


def _match_add_task(session: Session, *, workspace_id: int, customer_id: int, staff_id: int, at: datetime) -> None:
    from siyu.addtasks.service import match_add  # the add-by-phone area depends on adds, not the reverse

    match_add(session, workspace_id=workspace_id, customer_id=customer_id, staff_id=staff_id, at=at)


@dataclass
class JoinOutcome:
    customer: Customer
    group: CommunityGroup
    scan: LiveCodeScan | None


def record_group_join(
    session: Session,
    *,
    code: LiveCode,
    scan: LiveCodeScan,
    external_userid: str,
    at: datetime,
    clock: Clock,
    name: str | None = None,
) -> JoinOutcome:
    """A scanner joined the group their scan was routed to (simulated in embedded mode).

    The seat and the stay are the community area's `join_group` (a conditional UPDATE, so a group
    never counts past its limit; a customer already in the group keeps their stay); a group that
    filled up meanwhile is refused and the scanner rescans to get the next one.
    """
    if scan.group_id is None:
        raise InvalidInput("this scan was not routed to a group", details={"field": "scan_id"})
    actor = Actor.system(code.workspace_id, label="live_code")
    customer, _ = _customer(session, actor, external_userid=external_userid, name=name, phone=None, at=at, clock=clock)
    # Claim the scan first: of two submits of one scan, only one goes on to take a seat.
    claimed = session.execute(
        update(LiveCodeScan)
        .where(LiveCodeScan.id == scan.id, LiveCodeScan.customer_id.is_(None))
        .values(customer_id=customer.id, added_at=at)
        .execution_options(synchronize_session=False)
    )
    if not getattr(claimed, "rowcount", 0):
        group = session.get(CommunityGroup, scan.group_id)
        assert group is not None
        return JoinOutcome(customer, group, scan)
    # The community area owns seats and stays; groups depend on nothing of live codes.
    from siyu.community.groups.membership import GroupFull, join_group

    try:
        join_group(
            session,
            workspace_id=code.workspace_id,
            group_id=scan.group_id,
            customer_id=customer.id,
            at=at,
            clock=clock,
            scene="live_code",
            event_key=f"group_join:{scan.id}",
            event_properties={"live_code_id": code.id},
        )
    except GroupFull:
        raise Conflict(
            "this group just filled up; scan the code again for the next one", details={"field": "scan_id"}
        ) from None
    group = session.get(CommunityGroup, scan.group_id)
    assert group is not None
    session.refresh(group)
    scan.customer_id, scan.added_at = customer.id, at
    for tag_id in session.scalars(select(LiveCodeTag.tag_id).where(LiveCodeTag.live_code_id == code.id)):
        assign_tag(session, actor=actor, customer_id=customer.id, tag_id=tag_id, clock=clock, source=TagSource.RULE)
    if code.experiment_id is not None and scan.variant is not None:
        convert(session, experiment_id=code.experiment_id, visitor_id=scan.visitor_id, at=at, customer_id=customer.id)
    session.flush()
    return JoinOutcome(customer, group, scan)
