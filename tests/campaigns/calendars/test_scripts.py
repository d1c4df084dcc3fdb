"""The script library: CRUD, variable checks, grouping by stage, search, and a per-customer preview."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.campaigns.calendars import scripts
from siyu.campaigns.calendars.schemas import ScriptIn, ScriptPatch
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, NotFound, PermissionDenied
from siyu.models import Role
from tests.campaigns.calendars.factories import make_script
from tests.factories import actor_for, make_customer, make_staff, make_workspace


@pytest.mark.parametrize(
    ("values", "field", "variable"),
    [
        ({"body": "{{ nickname }}您好"}, "body", "nickname"),
        ({"body": "{% if %}"}, "body", None),
        ({"body": "   "}, "body", None),
        ({"title": " "}, "title", None),
        ({"stage": "售后"}, "stage", None),
        ({"tags": ["x" * 31]}, "tags", None),
    ],
)
def test_bad_scripts_are_refused_naming_the_field(
    db: Session, clock: FrozenClock, values: dict[str, object], field: str, variable: str | None
) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as caught:
        make_script(db, workspace=ws, clock=clock, **values)
    assert caught.value.details["field"] == field
    if variable:
        assert caught.value.details["variable"] == variable
    assert scripts.list_scripts(db, actor_for(ws)) == []


def test_crud_grouping_and_search(db: Session, clock: FrozenClock) -> None:
    # given scripts in three stages, one of them a brand's own
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    hello = make_script(db, workspace=ws, clock=clock, stage="greeting", title="首次问候", tags=["新客"])
    price = make_script(db, workspace=ws, clock=clock, stage="objection", title="嫌贵", body="{{ name }}，这款可以用券")
    own = make_script(db, workspace=ws, clock=clock, stage="vip_care", title="生日关怀", body="生日快乐！")
    # then the library groups by stage, the four standard stages first even when empty
    grouped = scripts.grouped_by_stage(scripts.list_scripts(db, actor))
    assert [(stage, [s.title for s in items]) for stage, items in grouped] == [
        ("greeting", ["首次问候"]),
        ("follow_up", []),
        ("objection", ["嫌贵"]),
        ("after_sale", []),
        ("vip_care", ["生日关怀"]),
    ]
    # and searches titles and bodies (LIKE wildcards are literal), tags and stages
    assert [s.id for s in scripts.list_scripts(db, actor, q="用券")] == [price.id]
    assert [s.id for s in scripts.list_scripts(db, actor, q="%")] == []
    assert [s.id for s in scripts.list_scripts(db, actor, tag="新客")] == [hello.id]
    assert [s.id for s in scripts.list_scripts(db, actor, stage="vip_care")] == [own.id]
    # when one is edited and another deleted
    scripts.update_script(
        db,
        actor=actor,
        script_id=price.id,
        data=ScriptPatch(stage="Follow_Up", body="{{ name }}，考虑得怎么样？"),
        clock=clock,
    )
    scripts.delete_script(db, actor=actor, script_id=own.id, clock=clock)
    assert (price.stage, price.body) == ("follow_up", "{{ name }}，考虑得怎么样？")
    with pytest.raises(NotFound):
        scripts.get_script(db, actor, own.id)
    with pytest.raises(InvalidInput):
        scripts.update_script(db, actor=actor, script_id=price.id, data=ScriptPatch(body="{{ bogus }}"), clock=clock)
    assert price.body == "{{ name }}，考虑得怎么样？"


def test_limited_roles_cannot_write_scripts(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    script = make_script(db, workspace=ws, clock=clock, title="首次问候")
    for role in (Role.STAFF, Role.STORE_MANAGER):
        actor = actor_for(ws, role=role)
        with pytest.raises(PermissionDenied):
            scripts.create_script(db, actor=actor, data=ScriptIn(stage="greeting", title="x", body="x"), clock=clock)
        with pytest.raises(PermissionDenied):
            scripts.update_script(db, actor=actor, script_id=script.id, data=ScriptPatch(title="改"), clock=clock)
    assert script.title == "首次问候"


def test_preview_renders_for_one_customer(db: Session, clock: FrozenClock) -> None:
    # given a customer 王小姐 owned by staff member 小林, and one without a name
    ws = make_workspace(db, clock=clock, name="花间集")
    staff = make_staff(db, workspace=ws, clock=clock, name="小林")
    system = Actor.system(ws.id)
    named = make_customer(db, actor=system, clock=clock, name="王小姐").customer
    named.owner_staff_id = staff.id
    nameless = make_customer(db, actor=system, clock=clock, phone="13800138000").customer
    script = make_script(db, workspace=ws, clock=clock, body="{{ name }}您好，我是{{ brand }}的{{ staff_name }}")
    # then the preview is the text staff would send
    text, names = scripts.preview_script(db, actor=actor_for(ws), script_id=script.id, customer_id=named.id)
    assert text == "王小姐您好，我是花间集的小林"
    assert names == ["brand", "name", "staff_name"]
    # and a customer without a value for a variable is a 422 naming the body
    with pytest.raises(InvalidInput) as caught:
        scripts.preview_script(db, actor=actor_for(ws), script_id=script.id, customer_id=nameless.id)
    assert caught.value.details == {"field": "body"}
    with pytest.raises(InvalidInput) as caught:
        scripts.preview_script(db, actor=actor_for(ws), script_id=script.id, customer_id=10**12)
    assert caught.value.details == {"field": "customer_id"}
