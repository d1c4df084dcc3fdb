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

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from sqlalchemy.orm import Session

from siyu.kit.errors import InvalidInput
from siyu.models import ContentItem, Customer

MAX_OUTPUT = 20_000
"""Longest rendered field, in characters: a message, not a document."""
_MAX_OPERAND = 10_000
_FORBIDDEN = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)
"""Loops, macros and includes: personalisation needs variables, filters and `if`, and loops are how
a template burns a sender's CPU."""


class _MessageEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, immutable (no `list.append` tricks), with `*` and `**` bounded so
    `{{ 'a' * 10**9 }}` cannot allocate gigabytes."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str):  # printf-style widths ("%0999999999d") allocate at will
                raise SecurityError("use filters instead of % formatting")
            return left % right
        for operand in (left, right):
            if isinstance(operand, int | float) and abs(operand) > _MAX_OPERAND:
                raise SecurityError(f"numbers above {_MAX_OPERAND} are not allowed with {operator}")
        if operator == "**":
            return left**right
        result = left * right
        if isinstance(result, str | list | tuple) and len(result) > MAX_OUTPUT:
            raise SecurityError("the result is too long")
        return result


_env = _MessageEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)
_env.globals.clear()  # no range(), lipsum(), dict(), cycler()…
_SAFE_FILTERS = {
    "default",
    "d",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "truncate",
    "replace",
    "round",
    "int",
    "float",
    "string",
    "length",
    "first",
    "last",
    "abs",
    "striptags",
    "urlencode",
}
"""Filters that cannot be asked to allocate (no center, indent, wordwrap, format)."""
_env.filters = {name: f for name, f in _env.filters.items() if name in _SAFE_FILTERS}
TEMPLATE_FIELDS = ("subject", "body", "title", "description")
SAMPLE_VALUES = {
    "name": "王芳",
    "city": "上海",
    "tier": "金卡会员",
    "points": "1280",
    "link": "https://example.com/s/sample",
    "coupon_code": "SAMPLE-2026",
    "member_url": "https://example.com/m/enter?t=sample",
    "staff_name": "小林",
    "brand": "品牌",
    "unsubscribe_url": "https://example.com/u/sample",
}
"""What `check_content` renders a template with, so a template that fails for everyone (a
division by zero, a number added to text) is refused on save, not at send time."""

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
# Fallbacks: `siyu.loyalty.variables` (which imports this module first) replaces them with the member's
# tier and balance once loaded; the workers and the app always load it through `siyu.tasks`.
register_variable("tier", _attribute("tier"))
register_variable("points", _attribute("points"))


def known_variables() -> set[str]:
    return set(_loaders) | CONTEXT_VARIABLES


@lru_cache(maxsize=512)
def _compile(source: str) -> Any:
    """The compiled template, after the loop/macro check (cached: a send renders thousands)."""
    variables_in(source)
    return _env.from_string(source)


def variables_in(source: str) -> set[str]:
    """The variables a template refers to; a syntax error or a loop is a 422 naming the line."""
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidInput(
            f"template syntax error on line {exc.lineno}: {exc.message}", details={"line": exc.lineno}
        ) from exc
    for node in tree.find_all(_FORBIDDEN):
        raise InvalidInput(
            f"line {node.lineno}: loops, macros and includes are not allowed in message templates",
            details={"line": node.lineno},
        )
    try:
        return set(meta.find_undeclared_variables(tree))
    except TemplateSyntaxError as exc:  # an unknown filter or test
        raise InvalidInput(f"template error on line {exc.lineno}: {exc.message}", details={"line": exc.lineno}) from exc


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
    for field in TEMPLATE_FIELDS:
        source = content.get(field) if isinstance(content, Mapping) else getattr(content, field)
        if source:
            try:
                _render_text(source, SAMPLE_VALUES)
            except RenderError as exc:
                raise InvalidInput(f"{field}: {exc} (with sample values)", details={"field": field}) from exc
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


def _render_text(source: str, variables: Mapping[str, Any]) -> str:
    """Render one template; every way it can fail is a `RenderError` (never an exception that
    would abort a whole send batch)."""
    try:
        text = str(_compile(source).render(**variables))
    except InvalidInput as exc:
        raise RenderError(exc.message) from exc
    except UndefinedError as exc:
        raise RenderError(str(exc.message)) from exc
    except SecurityError as exc:
        raise RenderError(f"not allowed in a template: {exc}") from exc
    except Exception as exc:  # ZeroDivisionError, TypeError, OverflowError… from operator templates
        raise RenderError(f"{type(exc).__name__}: {exc}"[:300]) from exc
    if len(text) > MAX_OUTPUT:
        raise RenderError(f"renders to {len(text)} characters; at most {MAX_OUTPUT}")
    return text


def render(content: ContentItem, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The message for one recipient: templates rendered, attachment fields copied."""
    message: dict[str, Any] = {"kind": str(content.kind)}
    for field in TEMPLATE_FIELDS:
        source = getattr(content, field)
        if not source:
            continue
        try:
            message[field if field != "body" else "text"] = _render_text(source, variables)
        except RenderError as exc:
            raise RenderError(f"{field}: {exc}") from exc
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
