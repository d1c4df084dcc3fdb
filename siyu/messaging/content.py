"""Message content: sandboxed Jinja templates, the variables they may use, and rendering.

Templates are written by operators, so they run in Jinja's sandbox (no attribute access to
Python internals) with `StrictUndefined`: a variable that does not resolve for a recipient is an
error for that delivery, never an empty "Hi ," in someone's phone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from sqlalchemy.orm import Session

from siyu.kit.errors import InvalidInput
from siyu.models import ContentItem, Customer

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)
TEMPLATE_FIELDS = ("subject", "body", "title", "description")

VariableLoader = Callable[[Session, int, Sequence[Customer]], dict[int, Any]]
_loaders: dict[str, VariableLoader] = {}
CONTEXT_VARIABLES = {"link", "coupon_code", "staff_name", "brand", "unsubscribe_url"}
"""Filled by the send itself (the per-recipient short link, the coupon a step issued, the sender)."""


def register_variable(name: str, loader: VariableLoader) -> None:
    """Let another area supply a per-customer variable (loyalty: tier, points)."""
    _loaders[name] = loader


def _profile(field: str) -> VariableLoader:
    def load(_session: Session, _ws: int, customers: Sequence[Customer]) -> dict[int, Any]:
        return {c.id: getattr(c, field) for c in customers if getattr(c, field) not in (None, "")}

    return load


def _attribute(key: str) -> VariableLoader:
    def load(_session: Session, _ws: int, customers: Sequence[Customer]) -> dict[int, Any]:
        return {c.id: c.attributes[key] for c in customers if (c.attributes or {}).get(key) not in (None, "")}

    return load


register_variable("name", _profile("name"))
register_variable("city", _profile("city"))
# Until the loyalty area registers real loaders, tier and points read custom attributes of those names.
register_variable("tier", _attribute("tier"))
register_variable("points", _attribute("points"))


def known_variables() -> set[str]:
    return set(_loaders) | CONTEXT_VARIABLES


@lru_cache(maxsize=512)
def _compile(source: str) -> Any:
    return _env.from_string(source)


def variables_in(source: str) -> set[str]:
    """The variables a template refers to; a syntax error is a 422 naming the line."""
    try:
        return set(meta.find_undeclared_variables(_env.parse(source)))
    except TemplateSyntaxError as exc:
        raise InvalidInput(
            f"template syntax error on line {exc.lineno}: {exc.message}", details={"line": exc.lineno}
        ) from exc


def check_content(content: ContentItem | Mapping[str, Any]) -> set[str]:
    """Refuse a template with an unknown variable or bad syntax; returns the variables it uses."""
    used: set[str] = set()
    for field in TEMPLATE_FIELDS:
        source = content.get(field) if isinstance(content, Mapping) else getattr(content, field)
        if not source:
            continue
        try:
            found = variables_in(source)
        except InvalidInput as exc:
            raise InvalidInput(f"{field}: {exc.message}", details={"field": field, **exc.details}) from exc
        unknown = sorted(found - known_variables())
        if unknown:
            raise InvalidInput(
                f"{field}: unknown variable {unknown[0]!r} (known: {', '.join(sorted(known_variables()))})",
                details={"field": field, "variable": unknown[0]},
            )
        used |= found
    link_url = content.get("link_url") if isinstance(content, Mapping) else content.link_url
    if "link" in used and not link_url:
        raise InvalidInput(
            "the template uses {{ link }} but the content has no link URL", details={"field": "link_url"}
        )
    return used


def content_hash(content: ContentItem) -> str:
    """Identifies "the same content" for deduplication: the templates and attachment, not the id."""
    parts = [content.kind, content.subject or "", content.body or "", content.title or "", content.link_url or ""]
    parts += [content.media_url or "", content.miniprogram_page or "", content.sms_template_code or ""]
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()


def load_variables(
    session: Session, workspace_id: int, customers: Sequence[Customer], names: set[str]
) -> dict[int, dict[str, Any]]:
    """Per-customer variables for the names a template uses."""
    values: dict[int, dict[str, Any]] = {c.id: {} for c in customers}
    for name in names:
        loader = _loaders.get(name)
        if loader is None:
            continue
        for customer_id, value in loader(session, workspace_id, customers).items():
            values[customer_id][name] = value
    return values


class RenderError(Exception):
    """A variable did not resolve for this recipient, or the sandbox stopped the template."""


def render(content: ContentItem, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The message for one recipient: templates rendered, attachment fields copied."""
    message: dict[str, Any] = {"kind": str(content.kind)}
    for field in TEMPLATE_FIELDS:
        source = getattr(content, field)
        if not source:
            continue
        try:
            message[field if field != "body" else "text"] = _compile(source).render(**variables)
        except UndefinedError as exc:
            raise RenderError(f"{field}: {exc.message}") from exc
        except SecurityError as exc:
            raise RenderError(f"{field}: not allowed in a template: {exc}") from exc
    if content.link_url:
        message["link"] = variables.get("link", content.link_url)
    if content.media_url:
        message["media_url"] = content.media_url
    if content.miniprogram_appid:
        message["miniprogram"] = {"appid": content.miniprogram_appid, "page": content.miniprogram_page or ""}
    if content.sms_template_code:
        message["sms_template_code"] = content.sms_template_code
        message["params"] = sms_params(message.get("text", ""))
    return message


def sms_params(text: str) -> dict[str, str]:
    """An SMS template's parameters, written in the body as `key=value` lines."""
    params: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            params[key.strip()] = value.strip()
    return params
