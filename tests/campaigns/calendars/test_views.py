"""The calendars console: each page renders, saves, and shows a bad input's error beside its field."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.models import GroupCalendar, GroupCalendarEntry, MomentPost, Persona, Role, Script, User, Workspace
from tests.campaigns.calendars.factories import make_calendar, make_moment, make_persona, make_script
from tests.factories import make_customer, make_group, make_staff
from tests.messaging.factories import make_account, make_content
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]
Users = Callable[..., User]


def _error(html: str, field: str) -> str:
    match = re.search(rf'data-error="{re.escape(field)}">(.*?)</div>', html, re.S)
    assert match, f"no error shown for {field}"
    return unescape(match.group(1))


def _count(db: Session, model: type) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_group_calendar_pages(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given two groups, a sandbox account and a content item
    groups = [make_group(db, workspace=workspace, clock=clock, name=n) for n in ("福利一群", "福利二群")]
    account = make_account(db, workspace=workspace, clock=clock, name="沙箱")
    item = make_content(db, workspace=workspace, clock=clock, body="早安", name="早安问候")
    personal = make_content(db, workspace=workspace, clock=clock, body="{{ name }}早安", name="点名问候")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get("/calendars")
    assert page.status_code == 200 and "福利一群" in page.text and 'id="new-calendar"' in page.text
    # when a calendar is saved with a bad slot time, the error is beside that field
    form = {"csrf_token": csrf, "name": "早安群", "group_ids": [str(groups[0].id)],
            "channel_account_id": str(account.id), "slot_times.morning": "8点"}  # fmt: skip
    bad = client.post("/calendars/groups", data=form)
    assert bad.status_code == 422
    assert "expected a time as HH:MM" in _error(bad.text, "slot_times.morning")
    assert 'value="8点"' in bad.text
    # and saved properly it opens its week grid
    created = client.post("/calendars/groups", data=form | {"slot_times.morning": "08:00"})
    assert created.status_code == 303
    calendar_id = db.scalars(select(GroupCalendar.id)).one()
    assert created.headers["location"] == f"/calendars/groups/{calendar_id}"
    url = f"/calendars/groups/{calendar_id}"
    # an entry with per-customer content is refused beside the content field
    refused = client.post(f"{url}/entries", data={"csrf_token": csrf, "weekdays": ["1"], "slot": "morning",
                                                 "content_id": str(personal.id)})  # fmt: skip
    assert refused.status_code == 422 and "{{ name }}" in _error(refused.text, "content_id")
    no_days = client.post(f"{url}/entries", data={"csrf_token": csrf, "slot": "morning", "content_id": str(item.id)})
    assert no_days.status_code == 422 and _error(no_days.text, "weekdays")
    ok = client.post(f"{url}/entries", data={"csrf_token": csrf, "weekdays": ["1", "3"], "slot": "noon",
                                            "content_id": str(item.id)})  # fmt: skip
    assert ok.status_code == 303
    grid = client.get(url)
    assert grid.status_code == 200
    for cell in ("noon-1", "noon-3"):
        assert re.search(rf'data-cell="{cell}">.*?早安问候', grid.text, re.S)
    assert re.search(r'data-cell="noon-2">\s*</td>', grid.text)
    assert _count(db, GroupCalendarEntry) == 1


def test_persona_and_moments_pages(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    life = make_content(db, workspace=workspace, clock=clock, body="生活", name="咖啡日常", is_marketing=False)
    offer = make_content(db, workspace=workspace, clock=clock, body="福利", name="限时福利")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    assert client.get("/calendars/personas").status_code == 200
    # a bad avatar URL is shown beside the field
    bad = client.post("/calendars/personas", data={"csrf_token": csrf, "name": "小林", "avatar_url": "ftp://x"})
    assert bad.status_code == 422 and "http(s) URL" in _error(bad.text, "avatar_url")
    created = client.post("/calendars/personas", data={"csrf_token": csrf, "name": "小林", "tone": "温暖"})
    assert created.status_code == 303
    persona_id = db.scalars(select(Persona.id)).one()
    assert client.get(f"/calendars/personas/{persona_id}/edit").status_code == 200
    url = f"/calendars/personas/{persona_id}/moments"
    assert created.headers["location"] == url
    # when four life posts and an offer are planned, the share is shown; a second offer is refused with the numbers
    for day, slot in [("2026-11-23", "noon"), ("2026-11-23", "evening"), ("2026-11-24", "morning"),
                      ("2026-11-24", "noon")]:  # fmt: skip
        response = client.post(url, data={"csrf_token": csrf, "post_date": day, "slot": slot,
                                          "content_id": str(life.id)})  # fmt: skip
        assert response.status_code == 303, response.text
    client.post(url, data={"csrf_token": csrf, "post_date": "2026-11-25", "slot": "noon", "content_id": str(offer.id)})
    week = client.get(url)
    assert week.status_code == 200
    assert "本周营销内容 1/5 = 20%（上限 20%）" in week.text
    assert re.search(r'data-cell="2026-11-25-noon">.*?限时福利', week.text, re.S)
    refused = client.post(url, data={"csrf_token": csrf, "post_date": "2026-11-26", "slot": "noon",
                                     "content_id": str(offer.id)})  # fmt: skip
    assert refused.status_code == 422
    assert "本周营销内容将占 2/6 = 33%，超过 20%" in _error(refused.text, "is_marketing")
    assert _count(db, MomentPost) == 5
    # and an unparseable date is named too
    bad_date = client.post(url, data={"csrf_token": csrf, "post_date": "明天", "slot": "noon",
                                      "content_id": str(life.id)})  # fmt: skip
    assert bad_date.status_code == 422 and _error(bad_date.text, "post_date")


def test_results_of_a_published_moment_are_editable(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    from siyu.campaigns.calendars.moments import publish_post

    life = make_content(db, workspace=workspace, clock=clock, body="生活", is_marketing=False)
    persona = make_persona(db, workspace=workspace, clock=clock)
    post = make_moment(db, workspace=workspace, clock=clock, persona=persona, content=life, on=date(2026, 11, 23))
    publish_post(db, post.id, clock)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    bad = client.post(
        f"/calendars/moments/{post.id}/results", data={"csrf_token": csrf, "likes": "多", "comments": "1"}
    )
    assert bad.status_code == 422 and "likes" in _error(bad.text, "form")
    ok = client.post(f"/calendars/moments/{post.id}/results", data={"csrf_token": csrf, "likes": "12", "comments": "3"})
    assert ok.status_code == 303
    db.expire_all()
    assert (post.likes, post.comments) == (12, 3)


def test_script_pages(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    customer = make_customer(db, actor=Actor.system(workspace.id), clock=clock, name="王小姐").customer
    make_script(db, workspace=workspace, clock=clock, stage="objection", title="嫌贵怎么办", body="理解您")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get("/calendars/scripts")
    assert page.status_code == 200
    assert re.search(r'data-stage="objection">.*?嫌贵怎么办', page.text, re.S)
    assert client.get("/calendars/scripts", params={"q": "没有这个"}).text.count("data-script=") == 0
    # an unknown variable is shown beside the body
    form = {
        "csrf_token": csrf,
        "stage": "greeting",
        "title": "首次问候",
        "body": "{{ nick }}您好",
        "tags": "新客，欢迎",
    }
    bad = client.post("/calendars/scripts", data=form)
    assert bad.status_code == 422 and "unknown variable 'nick'" in _error(bad.text, "body")
    created = client.post("/calendars/scripts", data=form | {"body": "{{ name }}您好"})
    assert created.status_code == 303
    script = db.scalars(select(Script).where(Script.title == "首次问候")).one()
    assert script.tags == ["新客", "欢迎"]
    detail = client.get(f"/calendars/scripts/{script.id}")
    assert detail.status_code == 200 and 'value="新客, 欢迎"' in detail.text
    # the preview renders for a customer, and an unknown customer is named
    preview = client.post(f"/calendars/scripts/{script.id}/preview", data={"csrf_token": csrf,
                                                                          "customer_id": str(customer.id)})  # fmt: skip
    assert preview.status_code == 200 and re.search(r'id="preview-text"[^>]*>王小姐您好</div>', preview.text)
    missing = client.post(f"/calendars/scripts/{script.id}/preview", data={"csrf_token": csrf, "customer_id": "abc"})
    assert missing.status_code == 422 and _error(missing.text, "customer_id")
    edited = client.post(f"/calendars/scripts/{script.id}", data=form | {"title": " ", "body": "您好"})
    assert edited.status_code == 422 and _error(edited.text, "title")


def test_staff_cannot_open_or_change_calendars(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    group = make_group(db, workspace=workspace, clock=clock)
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock, body="早安")
    calendar = make_calendar(db, workspace=workspace, clock=clock, groups_=[group], account=account,
                             entries=[([1], "morning", item)])  # fmt: skip
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/calendars").status_code == 403
    response = client.post(f"/calendars/groups/{calendar.id}/delete", data={"csrf_token": csrf})
    assert response.status_code == 403
    response = client.post("/calendars/scripts", data={"csrf_token": csrf, "stage": "greeting", "title": "x",
                                                       "body": "x"})  # fmt: skip
    assert response.status_code == 403
    assert _count(db, GroupCalendar) == 1 and _count(db, Script) == 0
