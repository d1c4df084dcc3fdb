"""Welcome messages (欢迎语): personalised text rendered in a sandbox, checked when saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from siyu.kit.errors import InvalidInput

VARIABLES = ("name", "staff_name", "store_name", "hook", "channel_name", "code_name")
"""What a welcome text may use, e.g. "{{ name }}，我是{{ staff_name }}，送您{{ hook }}"."""

_env = SandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)


def check_template(text: str, *, field: str = "welcome.text") -> None:
    """InvalidInput naming the field when the text does not parse or uses an unknown variable."""
    try:
        parsed = _env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"welcome message: {exc.message}", details={"field": field}) from None
    unknown = sorted(meta.find_undeclared_variables(parsed) - set(VARIABLES))
    if unknown:
        raise InvalidInput(
            f"welcome message uses unknown variable(s) {', '.join(unknown)}; known: {', '.join(VARIABLES)}",
            details={"field": field, "unknown": unknown},
        )


@dataclass(frozen=True)
class WelcomeMessage:
    text: str
    image_url: str | None
    link: dict[str, Any] | None
    miniprogram: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "image_url": self.image_url, "link": self.link, "miniprogram": self.miniprogram}


def render_welcome(
    welcome: dict[str, Any], context: dict[str, str], *, text_override: str | None = None
) -> WelcomeMessage:
    """The message for one customer; an experiment variant may override the text."""
    values = {key: context.get(key) or "" for key in VARIABLES}
    if not values["name"]:
        values["name"] = "亲"  # how a shop greets someone whose name it does not know
    source = text_override if text_override is not None else str(welcome.get("text") or "")
    try:
        text = _env.from_string(source).render(values).strip()
    except jinja2.TemplateError:
        text = source  # checked when saved; a variant override that fails still sends its raw text
    return WelcomeMessage(
        text=text,
        image_url=welcome.get("image_url"),
        link=welcome.get("link"),
        miniprogram=welcome.get("miniprogram"),
    )
