"""Message templates: sandboxed, bounded, checked on save, and never able to abort a send batch."""

from __future__ import annotations

import pytest

import siyu.tasks  # noqa: F401 - every area's message variables, as the app and workers load them
from siyu.kit.errors import InvalidInput
from siyu.messaging import content
from siyu.models import ContentItem


def _item(body: str, **values: object) -> ContentItem:
    return ContentItem(kind="text", body=body, name="素材", **values)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ 1/0 }}", "body: ZeroDivisionError: division by zero (with sample values)"),
        ("{{ points + 1 }}", 'body: TypeError: can only concatenate str (not "int") to str (with sample values)'),
        (
            "{{ 'a' * 200000000 }}",
            "body: not allowed in a template: numbers above 10000 are not allowed with * (with sample values)",
        ),
        (
            "{{ 9**99999 }}",
            "body: not allowed in a template: numbers above 10000 are not allowed with ** (with sample values)",
        ),
        (
            "{{ '%0999999999d' % 1 }}",
            "body: not allowed in a template: use filters instead of % formatting (with sample values)",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "body: line 1: loops, macros and includes are not allowed in message templates",
        ),
        ("{{ name|center(100000000) }}", "body: template error on line 1: No filter named 'center'."),
        (
            "{{ ''.__class__.__mro__ }}",
            "body: not allowed in a template: access to attribute '__class__' of 'str' object is unsafe."
            " (with sample values)",
        ),
        (
            "{{ name * 3000 }}{{ name * 3000 }}{{ name * 3000 }}{{ name * 3000 }}",
            "body: renders to 24000 characters; at most 20000 (with sample values)",
        ),
        (
            "{{ nmae }}",
            "body: unknown variable 'nmae'"
            " (known: brand, city, coupon_code, link, member_url, name, points, staff_name, tier, unsubscribe_url)",
        ),
        (
            "{{ name ",
            "body: template syntax error on line 1: unexpected end of template, expected 'end of print statement'.",
        ),
    ],
)
def test_templates_that_cannot_work_are_refused_on_save_with_the_field(body: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        content.check_content(_item(body))
    assert caught.value.message == message
    assert caught.value.details["field"] == "body"


def test_any_failure_while_rendering_is_a_render_error_for_that_recipient() -> None:
    # saved before the checks existed, or failing only for some customers' data
    for body in ("{{ 1/0 }}", "{{ points|int * 100000 }}", "{% for i in range(3) %}x{% endfor %}", "{{ name }}"):
        with pytest.raises(content.RenderError):
            content.render(_item(body), {"points": "20000"})


def test_personalisation_renders_with_filters_and_defaults() -> None:
    item = _item(
        "{{ name|default('亲') }}，积分 {{ points|int + 100 }}，{{ link }}", link_url="https://shop.example.com/a"
    )
    assert content.check_content(item) == {"name", "points", "link"}
    message = content.render(item, {"name": "王芳", "points": "20", "link": "https://s.example.com/s/abc"})
    assert message == {
        "kind": "text",
        "text": "王芳，积分 120，https://s.example.com/s/abc",
        "link": "https://s.example.com/s/abc",
    }
