"""Small helpers the messaging pages share: posted text, schema validation as a field error."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from siyu.kit.errors import DomainError, InvalidInput

M = TypeVar("M", bound=BaseModel)


def text(form: FormData, key: str) -> str:
    """A posted text field, stripped ("" when absent or a file)."""
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def validated(model: type[M], data: dict[str, Any]) -> M:
    """`model` from the form's values; the first schema error becomes an `InvalidInput` naming its field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: {first['msg']}" if path else str(first["msg"]), details={"field": path}) from None


def integer(value: str, field: str, *, blank: int | None = None) -> int | None:
    """A whole number typed in a form (`blank` when left empty); anything else names its field."""
    if not value:
        return blank
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidInput(f"{field}: expected a whole number", details={"field": field})
    return int(value)


def field_of(exc: DomainError, shown: set[str] | frozenset[str]) -> str:
    """The form field a refusal belongs to, or "form" when the page has no such field."""
    details = exc.details if isinstance(exc.details, dict) else {}
    name = str(details.get("field") or "form")
    while name not in shown and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in shown else "form"
