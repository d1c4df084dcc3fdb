"""Bulk import of a group's members from CSV: name, phone, external id (WeCom external userid), role.

All or nothing: every row is checked first (a known customer by phone or external id, a known role,
no person twice, enough seats for the new ones); any bad row refuses the whole file with
`InvalidInput(details={"field": "file", "rows": [{"row", "field", "message"}]})`, nothing written.
Customers are matched, never created: a group member the pool doesn't know is a row error. People
already in the group keep their stay (their role is updated if the row names one).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.groups.membership import group_in, join_group, set_role
from siyu.customers.repository import customer_ids_for_identities
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.phone import InvalidPhone, normalize_phone
from siyu.models import Customer, GroupMember, IdentityType
from siyu.models.group import GroupMemberRole

MAX_BYTES = 1024 * 1024
MAX_ROWS = 5000
HEADERS = {
    "name": "name",
    "姓名": "name",
    "phone": "phone",
    "手机": "phone",
    "手机号": "phone",
    "external_id": "external_id",
    "外部联系人id": "external_id",
    "role": "role",
    "角色": "role",
}
ROLE_NAMES = {
    "": GroupMemberRole.MEMBER,
    "member": GroupMemberRole.MEMBER,
    "成员": GroupMemberRole.MEMBER,
    "admin": GroupMemberRole.ADMIN,
    "管理员": GroupMemberRole.ADMIN,
    "koc": GroupMemberRole.KOC,
    "owner": GroupMemberRole.OWNER,
    "群主": GroupMemberRole.OWNER,
}


@dataclass
class ImportResult:
    joined: int = 0
    already: int = 0
    roles_changed: int = 0
    member_ids: list[int] = field(default_factory=list)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the file is not UTF-8 or GBK text", details={"field": "file"})


def _error(row: int, column: str, message: str) -> dict[str, Any]:
    return {"row": row, "field": column, "message": message}


def _customer_ids(session: Session, workspace_id: int, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The live (not erased) customer of each known (identity type, value): one query per type, one for erasure."""
    found = customer_ids_for_identities(session, workspace_id, pairs)
    if not found:
        return {}
    live = set(
        session.scalars(
            select(Customer.id).where(
                Customer.workspace_id == workspace_id,
                Customer.id.in_(sorted(set(found.values()))),
                Customer.erased_at.is_(None),
            )
        )
    )
    return {pair: customer_id for pair, customer_id in found.items() if customer_id in live}


def parse_rows(session: Session, *, workspace_id: int, data: bytes) -> list[tuple[int, int, GroupMemberRole | None]]:
    """(row number, customer id, role or None when the column is empty) per data row; or InvalidInput."""
    if not data.strip():
        raise InvalidInput("the file is empty", details={"field": "file"})
    if len(data) > MAX_BYTES:
        raise InvalidInput("the file is larger than 1 MB", details={"field": "file"})
    reader = csv.reader(io.StringIO(_decode(data)))
    header = next(reader, [])
    columns = [HEADERS.get(h.strip().lower()) for h in header]
    if "phone" not in columns and "external_id" not in columns:
        raise InvalidInput("the header needs a phone or external_id column", details={"field": "file"})
    # First the cells of every row (an error, or what to look up), then all customers at once.
    parsed: list[dict[str, Any] | tuple[int, dict[str, str], str | None, GroupMemberRole, str]] = []
    pairs: set[tuple[str, str]] = set()
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(parsed) >= MAX_ROWS:
            raise InvalidInput(f"at most {MAX_ROWS} rows", details={"field": "file"})
        values = {col: cells[i].strip() for i, col in enumerate(columns) if col and i < len(cells)}
        role_text = values.get("role", "").lower()
        role = ROLE_NAMES.get(role_text)
        if role is None:
            parsed.append(_error(number, "role", f"unknown role {values.get('role')!r}"))
            continue
        phone: str | None = None
        if values.get("phone"):
            try:
                phone = normalize_phone(values["phone"])
            except InvalidPhone:
                parsed.append(_error(number, "phone", f"not a phone number: {values['phone']!r}"))
                continue
            pairs.add((IdentityType.PHONE, phone))
        if values.get("external_id"):
            pairs.add((IdentityType.WECOM_EXTERNAL_USERID, values["external_id"]))
        parsed.append((number, values, phone, role, role_text))
    known = _customer_ids(session, workspace_id, pairs)
    errors: list[dict[str, Any]] = []
    rows: list[tuple[int, int, GroupMemberRole | None]] = []
    seen: dict[int, int] = {}
    for item in parsed:
        if isinstance(item, dict):
            errors.append(item)
            continue
        number, values, phone, role, role_text = item
        customer_id: int | None = None
        if phone is not None:
            customer_id = known.get((IdentityType.PHONE, phone))
        if customer_id is None and values.get("external_id"):
            customer_id = known.get((IdentityType.WECOM_EXTERNAL_USERID, values["external_id"]))
        if customer_id is None:
            column = "phone" if values.get("phone") else "external_id"
            if not values.get("phone") and not values.get("external_id"):
                errors.append(_error(number, "phone", "a phone or an external id is needed"))
            else:
                errors.append(_error(number, column, f"no customer matches {values.get('name') or ''}".strip()))
            continue
        if customer_id in seen:
            errors.append(_error(number, "phone", f"same customer as row {seen[customer_id]}"))
            continue
        seen[customer_id] = number
        rows.append((number, customer_id, role if role_text else None))
    if errors:
        raise InvalidInput(f"{len(errors)} row(s) can't be imported", details={"field": "file", "rows": errors})
    if not rows:
        raise InvalidInput("the file has no rows", details={"field": "file"})
    return rows


def _open_stays(session: Session, group_id: int, customer_ids: list[int]) -> dict[int, GroupMember]:
    """Each customer's current stay in the group (as `open_stay`: the latest open one), in one query."""
    stays: dict[int, GroupMember] = {}
    for stay in session.scalars(
        select(GroupMember)
        .where(
            GroupMember.group_id == group_id,
            GroupMember.left_at.is_(None),
            GroupMember.customer_id.in_(sorted(set(customer_ids))),
        )
        .order_by(GroupMember.id.desc())
    ):
        if stay.customer_id is not None:
            stays.setdefault(stay.customer_id, stay)
    return stays


def import_members(session: Session, *, actor: Actor, group_id: int, data: bytes, clock: Clock) -> ImportResult:
    """Import the CSV into the group (community:write), all rows or none."""
    actor.require(Scope.COMMUNITY_WRITE)
    group = group_in(session, actor.workspace_id, group_id, lock=True)
    rows = parse_rows(session, workspace_id=actor.workspace_id, data=data)
    stays = _open_stays(session, group.id, [customer_id for _number, customer_id, _role in rows])
    new = [r for r in rows if r[1] not in stays]
    seats = group.member_limit - group.member_count
    if len(new) > seats:
        raise InvalidInput(
            f"{len(new)} new members but {max(seats, 0)} seats left",
            details={"field": "file", "rows": [_error(new[max(seats, 0)][0], "phone", "no seat left")]},
        )
    result = ImportResult()
    now = clock.now()
    for _number, customer_id, role in rows:
        existing = stays.get(customer_id)
        if existing is None:
            member = join_group(
                session,
                workspace_id=actor.workspace_id,
                group_id=group.id,
                customer_id=customer_id,
                at=now,
                clock=clock,
                role=role if role and role != GroupMemberRole.OWNER else GroupMemberRole.MEMBER,
                scene="import",
            )
            if role == GroupMemberRole.OWNER:  # one owner per group: set_role demotes the previous one
                member = set_role(
                    session, actor=actor, group_id=group.id, customer_id=customer_id, role=role, clock=clock
                )
            result.joined += 1
        else:
            result.already += 1
            member = existing
            if role is not None and existing.role != role:
                set_role(session, actor=actor, group_id=group.id, customer_id=customer_id, role=role, clock=clock)
                result.roles_changed += 1
        result.member_ids.append(member.id)
    record(
        session,
        actor,
        action="import_members",
        entity_type="community_group",
        entity_id=group.id,
        after={"joined": result.joined, "already": result.already, "roles_changed": result.roles_changed},
        clock=clock,
    )
    return result
