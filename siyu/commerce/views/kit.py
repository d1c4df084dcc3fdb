"""Declarative console forms shared by the commerce and loyalty pages.

A page names its fields once (`FormField`): the template renders them (`commerce/_form.html`),
`text_values` keeps what the operator typed so a refused save shows the same form again, and
`parse` turns the text into typed values — yuan into integer fen with `Decimal`, never a float —
raising `InvalidInput` that names the field, which the page shows next to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.models import Customer, Workspace
from siyu.web.templating import render

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
"""What an <input type="datetime-local"> posts: the brand's wall-clock time."""
MAX_FEN = 10**14


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: dict[str, Any]) -> M:
    """The service's input schema; its first complaint names the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "form"
        raise InvalidInput(f"{path}: {first['msg']}", details={"field": path}) from None


def _(message: str) -> str:
    """Marks a label for the catalogue; the template translates it when it renders."""
    return message


@dataclass(frozen=True)
class FormField:
    """One input of a console form."""

    name: str
    label: str
    kind: str = "text"
    """text | textarea | int | yuan (typed in yuan, stored in fen) | select | bool | datetime | ids | list"""
    choices: tuple[tuple[str, str], ...] = ()
    """select: (value, label) pairs; labels are catalogue messages."""
    required: bool = False
    hint: str = ""


Fields = Sequence[FormField]


def brand_tz(session: Session, workspace_id: int) -> ZoneInfo:
    workspace = session.get(Workspace, workspace_id)
    return ZoneInfo(workspace.timezone if workspace else "Asia/Shanghai")


def yuan_text(fen: int | None) -> str:
    """Fen as the yuan an operator types ("12.5" → shown back as "12.50"); empty for None."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole}.{cents:02d}"


def parse_yuan(text: str, field: str) -> int:
    """ "12.34" yuan → 1234 fen exactly; more than two decimals or a negative amount is refused."""
    try:
        value = Decimal(text.replace(",", "").replace("¥", "").strip())
    except InvalidOperation:
        raise InvalidInput(f"{field}: expected an amount in yuan, e.g. 19.90", details={"field": field}) from None
    fen = value * 100
    if not value.is_finite() or fen != fen.to_integral_value() or fen < 0 or fen > MAX_FEN:
        raise InvalidInput(f"{field}: expected an amount in yuan with at most 2 decimals", details={"field": field})
    return int(fen)


def parse_int(text: str, field: str, *, allow_negative: bool = False) -> int:
    raw = text.strip()
    digits = raw[1:] if allow_negative and raw.startswith("-") else raw
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 15:
        raise InvalidInput(f"{field}: expected a whole number", details={"field": field})
    return int(raw)


def text_values(form: FormData, fields: Fields) -> dict[str, str]:
    """The form as typed; unchecked boxes are empty."""
    values: dict[str, str] = {}
    for f in fields:
        if f.kind in ("ids", "list") and f.choices:
            values[f.name] = ",".join(str(v) for v in form.getlist(f.name) if isinstance(v, str))
            continue
        value = form.get(f.name)
        values[f.name] = value.strip() if isinstance(value, str) else ""
    return values


def object_values(obj: Any, fields: Fields, tz: ZoneInfo) -> dict[str, str]:
    """An existing row's values as the form shows them."""
    values: dict[str, str] = {}
    for f in fields:
        value = getattr(obj, f.name, None)
        if value is None:
            values[f.name] = ""
        elif f.kind == "yuan":
            values[f.name] = yuan_text(value)
        elif f.kind == "bool":
            values[f.name] = "on" if value else ""
        elif f.kind == "datetime":
            values[f.name] = value.astimezone(tz).strftime(LOCAL_FORMAT)
        elif f.kind in ("ids", "list"):
            values[f.name] = ",".join(str(v) for v in value)
        else:
            values[f.name] = str(value)
    return values


def parse(values: dict[str, str], fields: Fields, tz: ZoneInfo) -> dict[str, Any]:
    """Typed values; an empty optional field is None. Raises `InvalidInput` naming the field."""
    data: dict[str, Any] = {}
    for f in fields:
        text = values.get(f.name, "")
        if f.kind == "bool":
            data[f.name] = text in ("on", "true", "1")
            continue
        if f.kind in ("ids", "list"):
            items = [t.strip() for t in text.replace("，", ",").split(",") if t.strip()]
            if f.kind == "ids":
                ids = [parse_id(t) for t in items]
                if any(i is None for i in ids):
                    raise InvalidInput(f"{f.name}: expected ids", details={"field": f.name})
                data[f.name] = ids
            else:
                data[f.name] = items
            continue
        if not text:
            if f.required:
                raise InvalidInput(f"{f.name}: required", details={"field": f.name})
            data[f.name] = None
            continue
        if f.kind == "int":
            data[f.name] = parse_int(text, f.name)
        elif f.kind == "yuan":
            data[f.name] = parse_yuan(text, f.name)
        elif f.kind == "datetime":
            try:
                data[f.name] = datetime.strptime(text, LOCAL_FORMAT).replace(tzinfo=tz)
            except ValueError:
                raise InvalidInput(f"{f.name}: expected YYYY-MM-DDTHH:MM", details={"field": f.name}) from None
        elif f.kind == "select" and f.choices and text not in {v for v, _label in f.choices}:
            raise InvalidInput(f"{f.name}: not one of the choices", details={"field": f.name})
        else:  # text, textarea and a valid select choice
            data[f.name] = text
    return data


def error_field(exc: DomainError, fields: Fields) -> str:
    """Where a refused save's message goes: the named field if the form shows it, else the top."""
    details = exc.details if isinstance(exc.details, dict) else {}
    parts = str(details.get("field") or "form").split(".")
    names = {f.name for f in fields}
    # "benefits.free_shipping" is the form's "free_shipping"; "channels.0" is "channels".
    return next((part for part in (parts[0], parts[-1]) if part in names), "form")


def customer_names(session: Session, workspace_id: int, customer_ids: Iterable[int]) -> dict[int, str]:
    """Names of customers by id, in one query (lists show who a row belongs to)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Customer.id, Customer.name).where(Customer.workspace_id == workspace_id, Customer.id.in_(ids))
    )
    return {cid: name or f"#{cid}" for cid, name in rows}


def form_page(
    request: Request,
    *,
    title: str,
    back: str,
    action: str,
    spec: Fields,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    error_status: int = 422,
) -> Response:
    """The shared console form page (`commerce/form.html`) for a field spec: 200 when first shown,
    `error_status` (422 unless the caller says otherwise) when it comes back with errors."""
    context: dict[str, Any] = {
        "title": title,
        "back": back,
        "action": action,
        "spec": spec,
        "values": values,
        "errors": errors or {},
    }
    return render(request, "commerce/form.html", context, status_code=error_status if errors else 200)
