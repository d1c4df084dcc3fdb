"""Exporting the customer list (CSV), with phones masked for roles that may not see them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.customers.masking import shown_email, shown_phone
from siyu.customers.repository import CustomerFilter
from siyu.models import Customer, CustomerTag, Identity, Staff, Tag

COLUMNS = [
    "id",
    "name",
    "phone",
    "email",
    "gender",
    "birthday",
    "province",
    "city",
    "lifecycle_stage",
    "owner",
    "first_channel",
    "tags",
    "identities",
    "created_at",
]
_CHUNK = 1000


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """Free text that a spreadsheet would run as a formula ("=HYPERLINK(…)") gets a leading quote."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _chunks_by_filter(session: Session, actor: Actor, flt: CustomerFilter) -> Iterator[list[Customer]]:
    last_id = 0
    base = repository.filtered_query(actor, flt)
    while True:
        chunk = list(session.scalars(base.where(Customer.id > last_id).order_by(Customer.id).limit(_CHUNK)))
        if not chunk:
            return
        yield chunk
        last_id = chunk[-1].id


def _chunks_by_ids(session: Session, actor: Actor, customer_ids: Sequence[int]) -> Iterator[list[Customer]]:
    ordered = sorted(customer_ids)
    for start in range(0, len(ordered), _CHUNK):
        wanted = ordered[start : start + _CHUNK]
        chunk = list(session.scalars(repository.pool_query(actor).where(Customer.id.in_(wanted)).order_by(Customer.id)))
        if chunk:
            yield chunk


def export_rows(
    session: Session,
    actor: Actor,
    flt: CustomerFilter | None,
    *,
    unmasked: bool = False,
    customer_ids: Sequence[int] | None = None,
) -> Iterator[list[str]]:
    """Header then one row per customer, streamed in id order, chunk by chunk: the customers `flt`
    selects, or those of `customer_ids` (a segment's members, evaluated once by the caller)."""
    actor.require(Scope.CUSTOMERS_READ)
    whole = unmasked and actor.can(Scope.CUSTOMERS_PII)
    staff = dict(session.execute(select(Staff.id, Staff.name).where(Staff.workspace_id == actor.workspace_id)).all())
    yield COLUMNS
    chunks = (
        _chunks_by_ids(session, actor, customer_ids)
        if customer_ids is not None
        else _chunks_by_filter(session, actor, flt or CustomerFilter())
    )
    for chunk in chunks:
        ids = [c.id for c in chunk]
        tags: dict[int, list[str]] = {}
        for customer_id, name in session.execute(
            select(CustomerTag.customer_id, Tag.name)
            .join(Tag, Tag.id == CustomerTag.tag_id)
            .where(CustomerTag.customer_id.in_(ids))
            .order_by(Tag.name)
        ):
            tags.setdefault(customer_id, []).append(name)
        identities: dict[int, list[str]] = {}
        for customer_id, type_, value in session.execute(
            select(Identity.customer_id, Identity.type, Identity.value)
            .where(Identity.customer_id.in_(ids))
            .where(Identity.type.not_in(["phone", "email"]))
            .order_by(Identity.type)
        ):
            identities.setdefault(customer_id, []).append(f"{type_}:{value}")
        for c in chunk:
            yield [
                str(c.id),
                safe_cell(c.name or ""),
                shown_phone(c.phone, whole=whole, national=True) or "",
                shown_email(c.email, whole=whole) or "",
                c.gender or "",
                c.birthday.isoformat() if c.birthday else "",
                safe_cell(c.province or ""),
                safe_cell(c.city or ""),
                c.lifecycle_stage,
                safe_cell(staff.get(c.owner_staff_id or 0, "")),
                safe_cell(c.first_channel or ""),
                safe_cell("|".join(tags.get(c.id, []))),
                safe_cell("|".join(identities.get(c.id, []))),
                c.created_at.isoformat(),
            ]


def csv_lines(rows: Iterator[list[str]], *, bom: bool = True) -> Iterator[str]:
    """CSV text chunks; with a UTF-8 BOM so Excel on Chinese Windows opens it correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if bom:
        yield "\ufeff"
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
