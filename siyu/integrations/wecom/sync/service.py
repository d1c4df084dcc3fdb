"""Full sync from WeCom: staff, every staff member's customers with their friend edges, and groups.

A run (`WecomSyncRun`) goes through its steps ("staff", "customers", "groups") one API page at a
time and commits after each page with the step and WeCom's cursor, so a run stopped by an error or
a restart resumes where it was (`run_sync` picks up the workspace's unfinished run). Running it
again changes nothing when WeCom did not change (see docs/wecom-sync.md for the rules).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.customers.service.timeline import add_relationship, system_event
from siyu.db import Database
from siyu.integrations.wecom import status
from siyu.integrations.wecom.client import WecomClient, redact
from siyu.integrations.wecom.config import WecomConfig, client_for, load_config
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.livecodes.state import decode_state
from siyu.models import (
    Channel,
    Customer,
    Identity,
    IdentityType,
    LiveCode,
    Relationship,
    Staff,
    SyncStatus,
    TransferStatus,
    WecomIntegration,
    WecomSyncRun,
    WecomTransfer,
)
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)

SCOPES: dict[str, tuple[str, ...]] = {
    "full": ("staff", "customers", "groups"),
    "staff": ("staff",),
    "customers": ("customers",),
    "groups": ("groups",),
}
USERIDS_PER_CALL = 100
"""`batch/get_by_user` takes at most 100 userids…"""
CONTACTS_PER_PAGE = 100
"""…and answers at most 100 customers a page."""
GROUPS_PER_PAGE = 100
"""Chats a page (WeCom allows 1000; each chat is a `groupchat/get` call, so a page stays one short transaction)."""
MAX_ATTEMPTS = 5
"""Retryable failures of one run before it is given up (finished FAILED; the next sync starts afresh)."""
MAX_RESTARTS = 3
"""Restarts of the customers step when WeCom's member list changed under it (60111 / 40058)."""
RESTART_CODES = (60111, 40058)
SHRINK_LIMIT = 0.2
"""Deactivating more than this share of the WeCom-linked active staff at once is refused (a warning instead)."""
SHRINK_MIN = 3
ACTIVE_STATUSES = (1, 4)
"""WeCom member status: 1 activated, 4 not yet activated (still a member); 2 disabled, 5 left."""


@dataclass(frozen=True)
class SyncOutcome:
    run_id: int
    status: str
    counts: dict[str, Any]
    error: str | None = None


def _bump(run: WecomSyncRun, **deltas: int) -> None:
    counts = dict(run.counts or {})
    for name, delta in deltas.items():
        counts[name] = int(counts.get(name, 0)) + delta
    run.counts = counts


def latest_run(session: Session, workspace_id: int) -> WecomSyncRun | None:
    """The workspace's most recent run."""
    return session.scalar(
        select(WecomSyncRun)
        .where(WecomSyncRun.workspace_id == workspace_id)
        .order_by(WecomSyncRun.started_at.desc(), WecomSyncRun.id.desc())
        .limit(1)
    )


def start_run(
    session: Session, workspace_id: int, clock: Clock, *, scope: str = "full", job_id: int | None = None
) -> WecomSyncRun:
    """The workspace's unfinished run (to resume) when it covers `scope`, else a new one for `scope`.

    The integration row is locked first, so two callers never both start a run: the second waits and
    resumes the first one's. An unfinished run of a narrower scope is ended ("superseded")."""
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}", details={"field": "scope"})
    session.scalar(select(WecomIntegration.id).where(WecomIntegration.workspace_id == workspace_id).with_for_update())
    run = latest_run(session, workspace_id)
    if run is not None and run.finished_at is None:
        if set(SCOPES[scope]) <= set(SCOPES.get(run.scope, ())):
            if job_id is not None:
                run.job_id = job_id
            return run
        run.status, run.finished_at = SyncStatus.FAILED, clock.now()
        run.error = f"superseded by a {scope} sync"
    run = WecomSyncRun(
        workspace_id=workspace_id,
        scope=scope,
        status=SyncStatus.RUNNING,
        step=SCOPES[scope][0],
        cursor={},
        counts={},
        job_id=job_id,
        started_at=clock.now(),
    )
    session.add(run)
    session.flush()
    return run


def run_sync(
    database: Database,
    workspace_id: int,
    clock: Clock,
    *,
    scope: str = "full",
    job_id: int | None = None,
    max_pages: int | None = None,
) -> SyncOutcome:
    """Run (or resume) the workspace's sync page by page, committing after each page.

    A WeCom error stops the run as FAILED with the error on the run and the integration; the next
    call resumes at the failed page. `max_pages` stops early (tests use it to simulate a crash)."""
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        run = start_run(session, workspace_id, clock, scope=scope, job_id=job_id)
        run.status, run.error = SyncStatus.RUNNING, None
        run_id = run.id
    pages = 0
    while True:
        if max_pages is not None and pages >= max_pages:
            return _outcome(database, workspace_id, run_id)
        try:
            with database.transaction() as session:
                bind_workspace(session, workspace_id)
                current = session.get(WecomSyncRun, run_id, with_for_update=True)
                assert current is not None
                if current.finished_at is not None:
                    return _outcome_of(current)
                config = load_config(session, workspace_id)
                _page(session, config, current, clock)
                pages += 1
        except (WecomError, NotConfigured) as exc:
            with database.transaction() as session:
                bind_workspace(session, workspace_id)
                failed = session.get(WecomSyncRun, run_id, with_for_update=True)
                assert failed is not None
                if isinstance(exc, WecomError) and _restart_customers(failed, exc):
                    continue
                _bump(failed, attempts=1)
                failed.status, failed.error = SyncStatus.FAILED, redact(str(exc))[:1000]
                retryable = isinstance(exc, WecomError) and exc.retryable
                if not retryable or int((failed.counts or {}).get("attempts", 0)) >= MAX_ATTEMPTS:
                    failed.finished_at = clock.now()  # given up: the next sync starts a new run
                if isinstance(exc, WecomError):
                    status.note_error(session, workspace_id, exc, clock)
                logger.warning("wecom sync stopped", extra={"workspace_id": workspace_id, "error": failed.error})
                return _outcome_of(failed)


def _restart_customers(run: WecomSyncRun, exc: WecomError) -> bool:
    """A member listed by `get_follow_user_list` left (60111) or the list changed (40058) during the
    customers step: restart the step with a fresh list, at most `MAX_RESTARTS` times per run."""
    if run.step != "customers" or exc.code not in RESTART_CODES:
        return False
    if int((run.counts or {}).get("customers_restarts", 0)) >= MAX_RESTARTS:
        return False
    _bump(run, customers_restarts=1)
    run.cursor = {}
    return True


def _outcome(database: Database, workspace_id: int, run_id: int) -> SyncOutcome:
    with database.transaction(read_only=True) as session:
        bind_workspace(session, workspace_id)
        run = session.get(WecomSyncRun, run_id)
        assert run is not None
        return _outcome_of(run)


def _outcome_of(run: WecomSyncRun) -> SyncOutcome:
    return SyncOutcome(run.id, str(run.status), dict(run.counts or {}), run.error)


def _page(session: Session, config: WecomConfig, run: WecomSyncRun, clock: Clock) -> None:
    """Do one page of the run's current step; move to the next step (or finish) when it is done."""
    steps = SCOPES.get(run.scope, SCOPES["full"])
    step = run.step or steps[0]
    client = client_for(config, secret="contact")
    handler = {"staff": _staff_step, "customers": _customers_step, "groups": _groups_step}[step]
    done = handler(session, client, config, run, dict(run.cursor or {}), clock)
    if done:
        later = steps[steps.index(step) + 1 :] if step in steps else ()
        run.cursor = {}
        if later:
            run.step = later[0]
        else:
            run.step, run.status, run.finished_at = None, SyncStatus.DONE, clock.now()
    session.flush()


# --- staff ------------------------------------------------------------------------------------


def fetch_members(client: WecomClient) -> list[dict[str, Any]]:
    """Member details of the app's visible range (`department/simplelist` roots + `user/list`)."""
    departments = client.call("GET", "department/simplelist").get("department_id") or []
    ids = {int(d["id"]) for d in departments}
    roots = [int(d["id"]) for d in departments if int(d.get("parentid") or 0) not in ids] or [1]
    members: dict[str, dict[str, Any]] = {}
    for root in roots:
        answer = client.call("GET", "user/list", params={"department_id": root, "fetch_child": 1})
        for user in answer.get("userlist") or []:
            members.setdefault(str(user["userid"]), user)
    return list(members.values())


def fetch_member_ids(client: WecomClient) -> set[str]:
    """Every member of the corp: `user/list_id` (cursor paging, whole corp whatever the visible range)
    plus `get_follow_user_list` (members with customer contact)."""
    ids: set[str] = set()
    cursor = ""
    for _ in range(10_000):
        answer = client.call("POST", "user/list_id", data={"cursor": cursor, "limit": 10_000})
        ids.update(str(u["userid"]) for u in answer.get("dept_user") or [])
        cursor = str(answer.get("next_cursor") or "")
        if not cursor:
            break
    follow = client.call("GET", "externalcontact/get_follow_user_list").get("follow_user") or []
    return ids | {str(u) for u in follow}


def _staff_step(
    session: Session, client: WecomClient, config: WecomConfig, run: WecomSyncRun, cursor: dict[str, Any], clock: Clock
) -> bool:
    """Create members siyu lacks, rename, deactivate members disabled or gone. Never re-activates a
    member (an operator may have turned them off); never deactivates on an empty or sharply shrunk
    membership (a visibility or permission change, not people leaving): a warning instead."""
    details = {str(m["userid"]): m for m in fetch_members(client)}
    membership = fetch_member_ids(client)
    ws = run.workspace_id
    known = {
        s.wecom_user_id: s
        for s in session.scalars(select(Staff).where(Staff.workspace_id == ws, Staff.wecom_user_id.is_not(None)))
    }
    for userid in sorted(membership | set(details)):
        member = details.get(userid, {"userid": userid})
        name = str(member.get("name") or userid)[:100]
        active = int(member.get("status", 1)) in ACTIVE_STATUSES and userid in membership
        staff = known.get(userid)
        if staff is None:
            if active:
                session.add(
                    Staff(workspace_id=ws, name=name, wecom_user_id=userid, is_active=True, created_at=clock.now())
                )
                _bump(run, staff_created=1)
        elif userid in details and staff.name != name:
            staff.name = name
            _bump(run, staff_updated=1)
    gone = [
        s
        for userid, s in known.items()
        if s.is_active
        and (userid not in membership or int(details.get(userid, {}).get("status", 1)) not in ACTIVE_STATUSES)
    ]
    active_known = sum(1 for s in known.values() if s.is_active)
    if gone and (not membership or len(gone) > max(SHRINK_MIN, int(active_known * SHRINK_LIMIT))):
        run.counts = {
            **(run.counts or {}),
            "warning": f"WeCom lists {len(membership)} members; {len(gone)} of {active_known} active staff "
            "would be deactivated — skipped, check the app's visible range and permissions",
        }
    else:
        for s in gone:
            s.is_active = False  # disabled in or left the corp
            _bump(run, staff_deactivated=1)
    _bump(run, staff_seen=len(membership))
    return True


# --- customers --------------------------------------------------------------------------------


def _customers_step(
    session: Session, client: WecomClient, config: WecomConfig, run: WecomSyncRun, cursor: dict[str, Any], clock: Clock
) -> bool:
    ws = run.workspace_id
    if "userids" not in cursor:
        follow = client.call("GET", "externalcontact/get_follow_user_list").get("follow_user") or []
        cursor = {"userids": sorted(str(u) for u in follow), "batch": 0, "cursor": ""}
    userids: list[str] = cursor["userids"]
    batch_no = int(cursor.get("batch", 0))
    batch = userids[batch_no * USERIDS_PER_CALL : (batch_no + 1) * USERIDS_PER_CALL]
    if not batch:
        return True
    staff_by_userid = {
        s.wecom_user_id: s
        for s in session.scalars(select(Staff).where(Staff.workspace_id == ws, Staff.wecom_user_id.in_(batch)))
    }
    answer = client.call(
        "POST",
        "externalcontact/batch/get_by_user",
        data={"userid_list": batch, "cursor": cursor.get("cursor") or "", "limit": CONTACTS_PER_PAGE},
    )
    actor = Actor.system(ws, label="wecom_sync")
    for item in answer.get("external_contact_list") or []:
        contact, follow = item.get("external_contact") or {}, item.get("follow_info") or {}
        staff = staff_by_userid.get(str(follow.get("userid")))
        if staff is None:
            _bump(run, unknown_staff=1)
            continue
        try:
            with session.begin_nested():  # a callback may be writing the same customer right now
                customer = _upsert_customer(session, actor, run, contact, clock)
                _ensure_edge(session, actor, run, customer, staff, follow, clock)
        except IntegrityError:
            _bump(run, conflicts=1)
            logger.info("wecom sync: conflict on a contact, left to the next run", extra={"workspace_id": ws})
    _bump(run, contacts_seen=len(answer.get("external_contact_list") or []))
    next_cursor = str(answer.get("next_cursor") or "")
    if next_cursor:
        run.cursor = {**cursor, "cursor": next_cursor}
        return False
    _close_missing(session, actor, run, list(staff_by_userid.values()), clock)
    run.cursor = {**cursor, "batch": batch_no + 1, "cursor": ""}
    return (batch_no + 1) * USERIDS_PER_CALL >= len(userids)


def _customer_by_identity(session: Session, ws: int, type_: str, value: str) -> Customer | None:
    customer = session.scalar(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(Identity.workspace_id == ws, Identity.type == type_, Identity.value == value)
    )
    while customer is not None and customer.merged_into_id is not None:
        customer = session.get(Customer, customer.merged_into_id)
    return customer


def _upsert_customer(
    session: Session, actor: Actor, run: WecomSyncRun, contact: dict[str, Any], clock: Clock
) -> Customer:
    ws, ext = run.workspace_id, str(contact["external_userid"])
    name, unionid = (str(contact.get("name") or "")[:100] or None), (str(contact.get("unionid") or "") or None)
    existing = _customer_by_identity(session, ws, IdentityType.WECOM_EXTERNAL_USERID, ext)
    if existing is not None:
        owner = _customer_by_identity(session, ws, IdentityType.WECHAT_UNIONID, unionid) if unionid else None
        union_ok = unionid is None or (owner is not None and owner.id == existing.id)
        if (name is None or existing.name == name) and union_ok:
            return existing
    identities = [(str(IdentityType.WECOM_EXTERNAL_USERID), ext)]
    if unionid:
        identities.append((str(IdentityType.WECHAT_UNIONID), unionid))
    result = ingest_customer(  # merges the unionid's other customer into this one, if any
        session,
        actor=actor,
        identities=identities,
        profile=ProfileInput(values={"name": name} if name else {}),
        source="wecom_sync",
        clock=clock,
    )
    if existing is None:
        _bump(run, customers_created=1)
    else:
        _bump(run, customers_updated=1)
    customer = result.customer
    while customer.merged_into_id is not None:
        merged = session.get(Customer, customer.merged_into_id)
        if merged is None:
            break
        customer = merged
    return customer


def _attribution(session: Session, ws: int, state: str | None) -> dict[str, Any]:
    decoded = decode_state(state)
    if decoded is None or state is None:
        return {}
    code = session.scalar(select(LiveCode).where(LiveCode.id == decoded.live_code_id, LiveCode.workspace_id == ws))
    if code is None:
        return {}
    channel = (
        session.scalar(select(Channel).where(Channel.id == decoded.channel_id, Channel.workspace_id == ws))
        if decoded.channel_id
        else None
    )
    return {
        "live_code_state": state,
        "live_code_id": code.id,
        "variant": decoded.variant,
        "channel_id": channel.id if channel else None,
        "channel": channel.name if channel else None,
    }


def _ensure_edge(
    session: Session,
    actor: Actor,
    run: WecomSyncRun,
    customer: Customer,
    staff: Staff,
    follow: dict[str, Any],
    clock: Clock,
) -> None:
    """The edge WeCom reports is open in siyu and stamped seen by this run (`wecom_seen_at`)."""
    open_edge = _open_edge(session, customer.id, staff.id)
    if open_edge is not None:
        open_edge.wecom_seen_at = run.started_at
        return
    added_at = datetime.fromtimestamp(int(follow.get("createtime") or 0), UTC) if follow.get("createtime") else None
    if _takeover(session, run, customer, staff, added_at, clock):
        return
    last_removed = session.scalar(
        select(Relationship.removed_at)
        .where(Relationship.customer_id == customer.id, Relationship.staff_id == staff.id)
        .order_by(Relationship.removed_at.desc())
        .limit(1)
    )
    if last_removed is not None and last_removed.tzinfo is None:
        last_removed = last_removed.replace(tzinfo=UTC)
    at = added_at or clock.now()
    if last_removed is not None and at < last_removed:
        at = last_removed  # edges of one pair never overlap
    add_relationship(
        session,
        actor=actor,
        customer_id=customer.id,
        staff_id=staff.id,
        added_at=at,
        clock=clock,
        **_attribution(session, run.workspace_id, follow.get("state")),
    )
    _stamp(session, run, customer.id, staff.id)
    _bump(run, edges_opened=1)


def _open_edge(session: Session, customer_id: int, staff_id: int) -> Relationship | None:
    return session.scalar(
        select(Relationship).where(
            Relationship.customer_id == customer_id,
            Relationship.staff_id == staff_id,
            Relationship.removed_at.is_(None),
        )
    )


def _stamp(session: Session, run: WecomSyncRun, customer_id: int, staff_id: int) -> None:
    session.flush()
    edge = _open_edge(session, customer_id, staff_id)
    if edge is not None:
        edge.wecom_seen_at = run.started_at


def _takeover(
    session: Session,
    run: WecomSyncRun,
    customer: Customer,
    staff: Staff,
    added_at: datetime | None,
    clock: Clock,
) -> bool:
    """The new edge is a transfer siyu submitted (WeCom took it over before siyu polled the result):
    move the customer as the poll would (`move_customer`), instead of counting a new add."""
    from siyu.integrations.wecom.sync.transfers import move_customer

    row = session.scalar(
        select(WecomTransfer)
        .where(
            WecomTransfer.workspace_id == run.workspace_id,
            WecomTransfer.customer_id == customer.id,
            WecomTransfer.takeover_staff_id == staff.id,
            WecomTransfer.status.in_((TransferStatus.WAITING, TransferStatus.SUCCEEDED)),
        )
        .order_by(WecomTransfer.submitted_at.desc(), WecomTransfer.id.desc())
        .limit(1)
    )
    if row is None:
        return False
    if row.status == TransferStatus.SUCCEEDED and _open_edge(session, customer.id, row.handover_staff_id) is None:
        return False  # moved long ago; this is a later, separate add
    if row.status == TransferStatus.WAITING:
        row.status, row.checked_at = TransferStatus.SUCCEEDED, clock.now()
        if added_at is not None:
            row.takeover_at = added_at
    move_customer(session, row, clock)
    _stamp(session, run, customer.id, staff.id)
    _bump(run, edges_transferred=1)
    return True


def _external_ids(session: Session, ws: int, customer_ids: Iterable[int]) -> dict[int, set[str]]:
    ids: dict[int, set[str]] = {}
    rows = session.execute(
        select(Identity.customer_id, Identity.value).where(
            Identity.workspace_id == ws,
            Identity.type == IdentityType.WECOM_EXTERNAL_USERID,
            Identity.customer_id.in_(list(customer_ids)),
        )
    )
    for customer_id, value in rows:
        ids.setdefault(int(customer_id), set()).add(str(value))
    return ids


def _close_missing(session: Session, actor: Actor, run: WecomSyncRun, staff: list[Staff], clock: Clock) -> None:
    """Edges of these staff open in siyu that this run did not see in WeCom: closed at sync time,
    remover unknown. Only edges older than the run (an edge a callback opened during the run stays)
    and without a transfer waiting for them (the transfer moves them)."""
    if not staff:
        return
    started = run.started_at
    edges = list(
        session.scalars(
            select(Relationship).where(
                Relationship.workspace_id == run.workspace_id,
                Relationship.staff_id.in_([s.id for s in staff]),
                Relationship.removed_at.is_(None),
                Relationship.added_at < started,
                or_(Relationship.wecom_seen_at.is_(None), Relationship.wecom_seen_at < started),
            )
        )
    )
    ext_ids = _external_ids(session, run.workspace_id, {e.customer_id for e in edges})
    waiting = set(
        session.execute(
            select(WecomTransfer.customer_id, WecomTransfer.handover_staff_id).where(
                WecomTransfer.workspace_id == run.workspace_id,
                WecomTransfer.status.in_((TransferStatus.SUBMITTED, TransferStatus.WAITING)),
                WecomTransfer.customer_id.in_({e.customer_id for e in edges}),
            )
        ).all()
    )
    now = clock.now()
    for edge in edges:
        if not ext_ids.get(edge.customer_id):
            continue  # not a WeCom customer (an import, a sandbox add): the sync does not judge it
        if (edge.customer_id, edge.staff_id) in waiting:
            continue
        edge.removed_at, edge.removed_by = now, None
        customer = session.get(Customer, edge.customer_id)
        if customer is not None:
            system_event(
                session,
                customer,
                "relationship.removed",
                f"rel:{edge.id}:removed",
                now,
                clock,
                {"staff_id": edge.staff_id, "removed_by": None, "source": "wecom_sync"},
            )
        _bump(run, edges_closed=1)
    session.flush()


# --- groups -----------------------------------------------------------------------------------


def _groups_step(
    session: Session, client: WecomClient, config: WecomConfig, run: WecomSyncRun, cursor: dict[str, Any], clock: Clock
) -> bool:
    try:
        from siyu.integrations.wecom.groups.sync import sync_group  # H2's module; optional until it lands
    except ImportError:
        run.counts = {**(run.counts or {}), "groups_skipped": "groups sync not available"}
        return True
    answer = client.call(
        "POST",
        "externalcontact/groupchat/list",
        data={"status_filter": 0, "limit": GROUPS_PER_PAGE, "cursor": cursor.get("cursor") or ""},
    )
    for chat in answer.get("group_chat_list") or []:
        sync_group(session, config, str(chat["chat_id"]), clock)
        _bump(run, groups_synced=1)
    next_cursor = str(answer.get("next_cursor") or "")
    if next_cursor:
        run.cursor = {"cursor": next_cursor}
        return False
    return True
