"""Resignation and on-job transfers (离职继承 / 在职继承) of customers and groups through WeCom.

    check = check_transfer(session, workspace_id, kind=..., handover_staff_id=..., takeover_staff_id=...,
                           customer_ids=[...], clock=clock)      # WeCom's limits, before submitting
    rows = submit_transfer(session, config, ..., clock=clock)    # one WecomTransfer per customer
    poll_transfers(session, config, clock)                       # transfer_result → statuses, edges moved

Statuses: SUBMITTED = recorded in siyu, not yet accepted by WeCom (a retryable error: the poll job
submits it again); WAITING = accepted, the takeover happens 24 h later unless the customer refuses
(on-job); SUCCEEDED = taken over (the friend edge moves to the takeover member); REFUSED / LIMITED /
FAILED with WeCom's errcode. Groups are handed over at once (`groupchat/transfer`,
`groupchat/onjob_transfer`): SUCCEEDED or FAILED per chat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.timeline import add_relationship, system_event
from siyu.integrations.wecom import status
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import KNOWN_CODES, WecomError
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import (
    CommunityGroup,
    Customer,
    Identity,
    IdentityType,
    Relationship,
    RemovedBy,
    Staff,
    TransferKind,
    TransferStatus,
    WecomTransfer,
)

MAX_PER_CALL = 100
"""Customers (or chats) per transfer call."""
MAX_TRANSFERS = 2
WINDOW = timedelta(days=90)
"""A customer may be transferred at most twice in 90 days by on-job transfers (resigned ones are not limited)."""
TAKEOVER_CHANNEL = "transfer"
"""`Relationship.channel` of a takeover edge: not an add (analytics leave it out of adds); the
customer's attribution (channel, live code) stays on the handed-over edge, closed as TRANSFERRED."""
TAKEOVER_DELAY = timedelta(hours=24)
OPEN_STATUSES = (TransferStatus.SUBMITTED, TransferStatus.WAITING)
RESULT_STATUS = {
    1: TransferStatus.SUCCEEDED,
    2: TransferStatus.WAITING,
    3: TransferStatus.REFUSED,
    4: TransferStatus.LIMITED,
    5: TransferStatus.FAILED,  # 无接替记录
}
APIS = {
    TransferKind.ON_JOB: ("externalcontact/transfer_customer", "externalcontact/transfer_result"),
    TransferKind.RESIGNED: ("externalcontact/resigned/transfer_customer", "externalcontact/resigned/transfer_result"),
}
GROUP_APIS = {
    TransferKind.ON_JOB: "externalcontact/groupchat/onjob_transfer",
    TransferKind.RESIGNED: "externalcontact/groupchat/transfer",
}


@dataclass
class TransferCheck:
    """What WeCom would refuse, before the operator submits. `ok` and `blocked` hold keys
    "c:<customer id>" / "g:<group id>" (`key`); `blocked` maps them to the reason; `notes` are the
    limits that apply to every transfer."""

    kind: TransferKind
    ok: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Problems with the whole request, by field."""
    notes: list[str] = field(default_factory=list)
    calls: int = 0
    """How many API calls the submission takes (≤ 100 customers each)."""


def key(kind: str, id_: int) -> str:
    """The key of a customer ("c") or group ("g") in `TransferCheck.ok` / `blocked`."""
    return f"{kind}:{id_}"


def _kind(value: str) -> TransferKind:
    try:
        return TransferKind(value)
    except ValueError:
        raise InvalidInput("kind must be on_job or resigned", details={"field": "kind"}) from None


def _staff(session: Session, workspace_id: int, staff_id: int, name: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.id == staff_id, Staff.workspace_id == workspace_id))
    if staff is None or not staff.wecom_user_id:
        raise InvalidInput(f"unknown WeCom staff member {staff_id}", details={"field": name})
    return staff


def _external_ids(session: Session, workspace_id: int, customer_ids: Iterable[int]) -> dict[int, str]:
    rows = session.execute(
        select(Identity.customer_id, Identity.value)
        .where(
            Identity.workspace_id == workspace_id,
            Identity.type == IdentityType.WECOM_EXTERNAL_USERID,
            Identity.customer_id.in_(list(customer_ids)),
        )
        .order_by(Identity.id)
    )
    found: dict[int, str] = {}
    for customer_id, value in rows:
        found.setdefault(int(customer_id), str(value))
    return found


def check_transfer(
    session: Session,
    workspace_id: int,
    *,
    kind: str,
    handover_staff_id: int,
    takeover_staff_id: int,
    customer_ids: list[int] | None = None,
    group_ids: list[int] | None = None,
    clock: Clock,
) -> TransferCheck:
    """WeCom's limits applied to a planned transfer, without calling WeCom."""
    check = TransferCheck(kind=_kind(kind))
    handover = _staff(session, workspace_id, handover_staff_id, "handover_staff_id")
    takeover = _staff(session, workspace_id, takeover_staff_id, "takeover_staff_id")
    if handover.id == takeover.id:
        check.errors["takeover_staff_id"] = "接替成员不能是原跟进成员"
    if not takeover.is_active:
        check.errors["takeover_staff_id"] = "接替成员已停用或离职"
    if check.kind == TransferKind.RESIGNED and handover.is_active:
        check.errors["handover_staff_id"] = "离职继承只能转接已离职成员的客户"
    if check.kind == TransferKind.ON_JOB and not handover.is_active:
        check.errors["handover_staff_id"] = "在职继承只能转接在职成员的客户；已离职成员请用离职继承"
    customers = list(dict.fromkeys(customer_ids or []))
    groups = list(dict.fromkeys(group_ids or []))
    if not customers and not groups:
        check.errors["customer_ids"] = "请选择至少一位客户或一个群"
    ext = _external_ids(session, workspace_id, customers)
    friends = set(
        session.scalars(
            select(Relationship.customer_id).where(
                Relationship.workspace_id == workspace_id,
                Relationship.staff_id == handover.id,
                Relationship.removed_at.is_(None),
                Relationship.customer_id.in_(customers),
            )
        )
    )
    since = clock.now() - WINDOW
    recent: dict[int, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(WecomTransfer.customer_id, func.count())
            .where(
                WecomTransfer.workspace_id == workspace_id,
                WecomTransfer.kind == TransferKind.ON_JOB,
                WecomTransfer.customer_id.in_(customers),
                WecomTransfer.submitted_at > since,
                WecomTransfer.status.not_in((TransferStatus.FAILED, TransferStatus.SUBMITTED)),
            )
            .group_by(WecomTransfer.customer_id)
        ).all()
    )
    pending = set(
        session.scalars(
            select(WecomTransfer.customer_id).where(
                WecomTransfer.workspace_id == workspace_id,
                WecomTransfer.customer_id.in_(customers),
                WecomTransfer.status.in_(OPEN_STATUSES),
            )
        )
    )
    for customer_id in customers:
        k = key("c", customer_id)
        if customer_id not in ext:
            check.blocked[k] = "没有企业微信 external_userid"
        elif customer_id not in friends:
            check.blocked[k] = "不是原跟进成员的好友"
        elif customer_id in pending:
            check.blocked[k] = "已有进行中的转接"
        elif check.kind == TransferKind.ON_JOB and recent.get(customer_id, 0) >= MAX_TRANSFERS:
            check.blocked[k] = "90 天内已在职转接 2 次（企业微信上限）"
        else:
            check.ok.append(k)
    chats = dict(
        session.execute(
            select(CommunityGroup.id, CommunityGroup.wecom_chat_id).where(
                CommunityGroup.workspace_id == workspace_id, CommunityGroup.id.in_(groups)
            )
        ).all()
    )
    for group_id in groups:
        if not chats.get(group_id):
            check.blocked[key("g", group_id)] = "不是企业微信客户群"
        else:
            check.ok.append(key("g", group_id))
    ok_customers = [k for k in check.ok if k.startswith("c:")]
    check.calls = -(-len(ok_customers) // MAX_PER_CALL) + -(-(len(check.ok) - len(ok_customers)) // MAX_PER_CALL)
    check.notes = [
        "每次最多转接 100 位客户或 100 个群，超出将分批提交",
        "在职继承：每位客户 90 天内最多被转接 2 次（离职继承不受此限）；"
        "在企业微信管理后台做的转接 siyu 看不到，不计入此数",
        "客户在 24 小时后自动接替" + ("；在职继承期间客户可拒绝" if check.kind == TransferKind.ON_JOB else ""),
    ]
    return check


def _error_text(code: int) -> str:
    return f"errcode {code}" + (f" ({KNOWN_CODES[code]})" if code in KNOWN_CODES else "")


def submit_transfer(
    session: Session,
    config: WecomConfig,
    *,
    kind: str,
    handover_staff_id: int,
    takeover_staff_id: int,
    customer_ids: list[int] | None = None,
    group_ids: list[int] | None = None,
    submitted_by: str | None,
    clock: Clock,
) -> list[WecomTransfer]:
    """Check, then submit: one `WecomTransfer` per customer and group. Anything the check blocks →
    `InvalidInput` naming the field, nothing written. Per-customer errcodes end on their rows."""
    ws = config.workspace_id
    wanted = list(dict.fromkeys(customer_ids or []))
    if wanted:  # two submissions of the same customers queue here; the second then sees the first's rows
        session.execute(
            select(Customer.id).where(Customer.workspace_id == ws, Customer.id.in_(wanted)).with_for_update()
        )
    check = check_transfer(
        session,
        ws,
        kind=kind,
        handover_staff_id=handover_staff_id,
        takeover_staff_id=takeover_staff_id,
        customer_ids=customer_ids,
        group_ids=group_ids,
        clock=clock,
    )
    if check.errors:
        name, message = next(iter(check.errors.items()))
        raise InvalidInput(message, details={"field": name, "errors": check.errors})
    if check.blocked:
        field_name = "customer_ids" if any(k.startswith("c:") for k in check.blocked) else "group_ids"
        raise InvalidInput(
            "some selections cannot be transferred",
            details={"field": field_name, "blocked": dict(check.blocked)},
        )
    handover = _staff(session, ws, handover_staff_id, "handover_staff_id")
    takeover = _staff(session, ws, takeover_staff_id, "takeover_staff_id")
    ext = _external_ids(session, ws, customer_ids or [])
    rows: list[WecomTransfer] = []
    for customer_id in dict.fromkeys(customer_ids or []):
        rows.append(
            _row(check.kind, handover, takeover, ws, clock, submitted_by, customer_id=customer_id, ext=ext[customer_id])
        )
    chats = dict(
        session.execute(
            select(CommunityGroup.id, CommunityGroup.wecom_chat_id).where(
                CommunityGroup.workspace_id == ws, CommunityGroup.id.in_(group_ids or [])
            )
        ).all()
    )
    groups = [
        _row(check.kind, handover, takeover, ws, clock, submitted_by, group_id=g, ext=str(chats[g]))
        for g in dict.fromkeys(group_ids or [])
    ]
    session.add_all(rows + groups)
    session.flush()
    client = client_for(config, secret="contact")
    _send_customers(session, client, config, rows, handover, takeover, clock)
    _send_groups(session, client, config, groups, takeover, clock)
    session.flush()
    return rows + groups


def _row(
    kind: TransferKind,
    handover: Staff,
    takeover: Staff,
    ws: int,
    clock: Clock,
    submitted_by: str | None,
    *,
    ext: str,
    customer_id: int | None = None,
    group_id: int | None = None,
) -> WecomTransfer:
    return WecomTransfer(
        workspace_id=ws,
        kind=kind,
        handover_staff_id=handover.id,
        takeover_staff_id=takeover.id,
        customer_id=customer_id,
        group_id=group_id,
        external_id=ext,
        status=TransferStatus.SUBMITTED,
        submitted_by=submitted_by,
        submitted_at=clock.now(),
    )


def _send_customers(
    session: Session,
    client: WecomClient,
    config: WecomConfig,
    rows: list[WecomTransfer],
    handover: Staff,
    takeover: Staff,
    clock: Clock,
) -> None:
    by_kind: dict[TransferKind, list[WecomTransfer]] = defaultdict(list)
    for row in rows:
        by_kind[TransferKind(row.kind)].append(row)
    for kind, batch in by_kind.items():
        submit_api = APIS[kind][0]
        for start in range(0, len(batch), MAX_PER_CALL):
            chunk = batch[start : start + MAX_PER_CALL]
            data: dict[str, Any] = {
                "handover_userid": handover.wecom_user_id,
                "takeover_userid": takeover.wecom_user_id,
                "external_userid": [r.external_id for r in chunk],
            }
            try:
                answer = client.call("POST", submit_api, data=data)
            except WecomError as exc:
                status.note_error(session, config.workspace_id, exc, clock)
                for row in chunk:
                    row.errcode, row.error = exc.code, str(exc)[:500]
                    if not exc.retryable:
                        row.status = TransferStatus.FAILED
                continue
            codes = {str(c.get("external_userid")): int(c.get("errcode") or 0) for c in answer.get("customer") or []}
            for row in chunk:
                code = codes.get(row.external_id, 0)
                if code:
                    row.status, row.errcode, row.error = TransferStatus.FAILED, code, _error_text(code)
                else:
                    row.status, row.errcode, row.error = TransferStatus.WAITING, None, None
                    row.takeover_at = clock.now() + TAKEOVER_DELAY


def _send_groups(
    session: Session, client: WecomClient, config: WecomConfig, rows: list[WecomTransfer], takeover: Staff, clock: Clock
) -> None:
    for kind in (TransferKind.ON_JOB, TransferKind.RESIGNED):
        batch = [r for r in rows if r.kind == kind]
        for start in range(0, len(batch), MAX_PER_CALL):
            chunk = batch[start : start + MAX_PER_CALL]
            try:
                answer = client.call(
                    "POST",
                    GROUP_APIS[kind],
                    data={"chat_id_list": [r.external_id for r in chunk], "new_owner": takeover.wecom_user_id},
                )
            except WecomError as exc:
                status.note_error(session, config.workspace_id, exc, clock)
                for row in chunk:
                    row.errcode, row.error = exc.code, str(exc)[:500]
                    if not exc.retryable:
                        row.status = TransferStatus.FAILED
                continue
            failed = {str(f.get("chat_id")): int(f.get("errcode") or 0) for f in answer.get("failed_chat_list") or []}
            for row in chunk:
                code = failed.get(row.external_id, 0)
                if code:
                    row.status, row.errcode, row.error = TransferStatus.FAILED, code, _error_text(code)
                    continue
                row.status, row.takeover_at, row.checked_at = TransferStatus.SUCCEEDED, clock.now(), clock.now()
                group = session.get(CommunityGroup, row.group_id) if row.group_id else None
                if group is not None:
                    group.owner_staff_id = row.takeover_staff_id


def poll_transfers(session: Session, config: WecomConfig, clock: Clock) -> dict[str, int]:
    """Resubmit SUBMITTED rows (a retryable error stopped them), then ask `transfer_result` for the
    WAITING ones; succeeded customers move to the takeover member. Returns counts by new status."""
    ws = config.workspace_id
    client = client_for(config, secret="contact")
    counts: dict[str, int] = defaultdict(int)
    stuck = list(
        session.scalars(
            select(WecomTransfer).where(
                WecomTransfer.workspace_id == ws,
                WecomTransfer.status == TransferStatus.SUBMITTED,
            )
        )
    )
    for (handover_id, takeover_id), rows in _by_pair(stuck).items():
        handover, takeover = session.get(Staff, handover_id), session.get(Staff, takeover_id)
        assert handover is not None and takeover is not None
        _send_customers(session, client, config, [r for r in rows if r.customer_id], handover, takeover, clock)
        _send_groups(session, client, config, [r for r in rows if r.group_id], takeover, clock)
        counts["resubmitted"] += len(rows)
    waiting = list(
        session.scalars(
            select(WecomTransfer).where(
                WecomTransfer.workspace_id == ws, WecomTransfer.status == TransferStatus.WAITING
            )
        )
    )
    for (handover_id, takeover_id), rows in _by_pair(waiting).items():
        handover, takeover = session.get(Staff, handover_id), session.get(Staff, takeover_id)
        assert handover is not None and takeover is not None
        for kind in (TransferKind.ON_JOB, TransferKind.RESIGNED):
            mine = {r.external_id: r for r in rows if r.kind == kind}
            if not mine:
                continue
            try:
                results = _results(client, APIS[kind][1], handover, takeover)
            except WecomError as exc:
                status.note_error(session, ws, exc, clock)
                counts["errors"] += 1
                continue
            for item in results:
                row = mine.get(str(item.get("external_userid")))
                if row is None:
                    continue
                new = RESULT_STATUS.get(int(item.get("status") or 0), TransferStatus.WAITING)
                row.checked_at = clock.now()
                if item.get("takeover_time"):
                    row.takeover_at = datetime.fromtimestamp(int(item["takeover_time"]), UTC)
                if new == row.status:
                    continue
                row.status = new
                if new == TransferStatus.FAILED:
                    row.error = "无接替记录"
                counts[str(new)] += 1
                if new == TransferStatus.SUCCEEDED:
                    move_customer(session, row, clock)
    session.flush()
    return dict(counts)


def _by_pair(rows: list[WecomTransfer]) -> dict[tuple[int, int], list[WecomTransfer]]:
    pairs: dict[tuple[int, int], list[WecomTransfer]] = defaultdict(list)
    for row in rows:
        pairs[(row.handover_staff_id, row.takeover_staff_id)].append(row)
    return pairs


def _results(client: WecomClient, api: str, handover: Staff, takeover: Staff) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(1000):
        answer = client.call(
            "POST",
            api,
            data={
                "handover_userid": handover.wecom_user_id,
                "takeover_userid": takeover.wecom_user_id,
                "cursor": cursor,
            },
        )
        items.extend(answer.get("customer") or [])
        cursor = str(answer.get("next_cursor") or "")
        if not cursor:
            break
    return items


def move_customer(session: Session, row: WecomTransfer, clock: Clock) -> None:
    """A succeeded transfer: close every open edge of the handover member with the customer as
    TRANSFERRED (not a deletion; the edge keeps its attribution) and open the takeover member's at the
    takeover time as a takeover edge (`TAKEOVER_CHANNEL`, no channel or live code: not an add).
    Idempotent (an edge already moved stays)."""
    if row.customer_id is None:
        return
    at = row.takeover_at or clock.now()
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    actor = Actor.system(row.workspace_id, label="wecom_transfer")
    olds = list(
        session.scalars(
            select(Relationship)
            .where(
                Relationship.customer_id == row.customer_id,
                Relationship.staff_id == row.handover_staff_id,
                Relationship.removed_at.is_(None),
            )
            .order_by(Relationship.id)
        )
    )
    customer = session.get(Customer, row.customer_id)
    if customer is None:
        return
    for old in olds:
        old.removed_at, old.removed_by = at, RemovedBy.TRANSFERRED
    if olds:
        system_event(
            session,
            customer,
            "relationship.transferred",
            f"transfer:{row.id}",
            at,
            clock,
            {"from_staff_id": row.handover_staff_id, "to_staff_id": row.takeover_staff_id, "kind": str(row.kind)},
        )
    taken = session.scalar(
        select(Relationship.id).where(
            Relationship.customer_id == row.customer_id,
            Relationship.staff_id == row.takeover_staff_id,
            Relationship.removed_at.is_(None),
        )
    )
    if taken is None:
        session.flush()
        add_relationship(
            session,
            actor=actor,
            customer_id=row.customer_id,
            staff_id=row.takeover_staff_id,
            added_at=at,
            clock=clock,
            channel=TAKEOVER_CHANNEL,
        )
    if customer.owner_staff_id in (None, row.handover_staff_id):
        customer.owner_staff_id = row.takeover_staff_id


def unassigned(client: WecomClient, *, cursor: str = "", page_size: int = 1000) -> tuple[list[dict[str, Any]], str]:
    """One page of `get_unassigned_list`: customers of members who left, not yet handed over."""
    answer = client.call("POST", "externalcontact/get_unassigned_list", data={"cursor": cursor, "page_size": page_size})
    return list(answer.get("info") or []), str(answer.get("next_cursor") or "")


def transfers_of(session: Session, workspace_id: int, *, limit: int = 200) -> list[WecomTransfer]:
    """The latest transfers, newest first."""
    return list(
        session.scalars(
            select(WecomTransfer)
            .where(WecomTransfer.workspace_id == workspace_id)
            .order_by(WecomTransfer.submitted_at.desc(), WecomTransfer.id.desc())
            .limit(limit)
        )
    )
