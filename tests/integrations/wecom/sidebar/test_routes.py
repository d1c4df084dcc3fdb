"""The sidebar over HTTP: OAuth through the fake, session cookie, pages, forms, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.sidebar import js_signature, open_chat
from siyu.integrations.wecom.sidebar import auth
from siyu.kit.clock import FrozenClock
from siyu.models import CustomerEvent, CustomerTag, Script, WecomIntegration
from tests.factories import make_customer, make_tag, make_workspace
from tests.integrations.wecom.helpers import wecom_staff
from tests.integrations.wecom.sidebar.factories import SidebarSetup, sidebar_setup

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client: TestClient, fake: RunningFake, s: SidebarSetup, userid: str = "zhangli") -> None:
    """/sidebar → the fake's OAuth page (the member in the open chat) → /sidebar/oauth → session."""
    open_chat(fake.fake, s.setup.corp.corp_id, userid=userid, external_userid=s.external_userid)
    start = client.get(f"/sidebar?ws={s.setup.workspace.id}")
    assert start.status_code == 302
    assert start.headers["location"].startswith(fake.url + "/connect/oauth2/authorize?")
    at_wecom = requests.get(start.headers["location"].split("#")[0], allow_redirects=False, timeout=5)
    back = urlsplit(at_wecom.headers["location"])
    assert (back.netloc, back.path) == ("testserver", "/sidebar/oauth")
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/sidebar/home"


def test_oauth_opens_a_session_and_the_customer_page(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    db.commit()
    assert client.get("/sidebar/home").status_code == 401
    sign_in(client, fake_wecom, s)
    assert client.cookies.get(auth.COOKIE_NAME)
    home = client.get("/sidebar/home")
    assert home.status_code == 200
    assert "张丽" in home.text and f'src="{fake_wecom.url}/js/jwxwork.js"' in home.text
    again = client.get(f"/sidebar?ws={s.setup.workspace.id}")  # always the silent OAuth again
    assert again.status_code == 302 and again.headers["location"].startswith(fake_wecom.url + "/connect/oauth2/")
    page = client.get(f"/sidebar/c?eu={s.external_userid}")
    assert page.status_code == 200
    assert "王芳" in page.text


def test_tags_and_notes_forms_need_the_session_csrf(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    tag = make_tag(db, workspace=s.setup.workspace, name="高意向")
    db.commit()
    sign_in(client, fake_wecom, s)
    page = client.get(f"/sidebar/c?eu={s.external_userid}")
    match = _CSRF.search(page.text)
    assert match
    csrf = match.group(1)
    url = f"/sidebar/c/{s.customer.id}"
    refused = client.post(url + "/tags", data={"csrf_token": "wrong", "tag_id": str(tag.id), "eu": s.external_userid})
    assert refused.status_code == 403
    assert db.scalar(select(CustomerTag.id).where(CustomerTag.customer_id == s.customer.id)) is None
    saved = client.post(url + "/tags", data={"csrf_token": csrf, "tag_id": str(tag.id), "eu": s.external_userid})
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/sidebar/c?eu={s.external_userid}&notice=tags_saved"
    assert list(db.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == s.customer.id))) == [tag.id]
    bad = client.post(url + "/tags", data={"csrf_token": csrf, "tag_id": "x", "eu": s.external_userid})
    assert bad.status_code == 422
    noted = client.post(url + "/notes", data={"csrf_token": csrf, "text": "周末到店", "eu": s.external_userid})
    assert noted.status_code == 303
    assert "周末到店" in client.get(noted.headers["location"]).text
    empty = client.post(url + "/notes", data={"csrf_token": csrf, "text": " ", "eu": s.external_userid})
    assert empty.status_code == 422
    notes = db.scalars(select(CustomerEvent.id).where(CustomerEvent.type == "note.added"))
    assert len(list(notes)) == 1


def test_unknown_member_and_other_staffs_customer_are_refused(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, s.setup, clock=clock, userid="lisi", name="李四")
    db.commit()
    open_chat(fake_wecom.fake, s.setup.corp.corp_id, userid="nobody", external_userid=s.external_userid)
    start = client.get(f"/sidebar?ws={s.setup.workspace.id}")
    back = urlsplit(requests.get(start.headers["location"], allow_redirects=False, timeout=5).headers["location"])
    stranger = client.get(f"{back.path}?{back.query}")
    assert stranger.status_code == 403
    assert "还不是本品牌的导购" in stranger.text
    assert auth.COOKIE_NAME not in stranger.headers.get("set-cookie", "")
    sign_in(client, fake_wecom, s, userid="lisi")
    other = client.get(f"/sidebar/c?eu={s.external_userid}")
    assert other.status_code == 403
    assert "只能查看与您是好友的客户" in other.text
    assert client.get("/sidebar/c?eu=wmNobody").status_code == 404


def test_oauth_errors(db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    db.commit()
    ws = s.setup.workspace.id
    nonce = auth.new_nonce()
    client.cookies.set(auth.NONCE_COOKIE, nonce, domain="testserver.local", path="/sidebar")
    state = auth.state_token(ws, nonce, secret=client.app.state.settings.session_secret(), clock=clock)  # type: ignore[attr-defined]
    used = client.get(f"/sidebar/oauth?code=never-issued&state={state}")
    assert (used.status_code, used.headers["location"]) == (303, f"/sidebar?ws={ws}")
    assert client.get("/sidebar/oauth?code=x&state=forged").status_code == 401
    s.setup.corp.fail_next("auth/getuserinfo", -1)
    busy = client.get(f"/sidebar/oauth?code=x&state={state}")
    assert busy.status_code == 502
    assert "企业微信暂时不可用" in busy.text
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == ws))
    db.refresh(integration)
    assert integration is not None and integration.last_error and "auth/getuserinfo" in integration.last_error
    assert client.get("/sidebar?ws=0").status_code == 422


def test_jssdk_signs_only_sidebar_pages_of_this_site(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    db.commit()
    sign_in(client, fake_wecom, s)
    good = client.get("/sidebar/jssdk", params={"url": "http://testserver/sidebar/home"})
    assert good.status_code == 200
    body = good.json()
    tickets = s.setup.corp.table("sidebar")["tickets"]
    config, agent = body["config"], body["agentConfig"]
    assert config["appId"] == s.setup.corp.corp_id
    assert config["signature"] == js_signature(
        tickets["corp"]["ticket"], config["nonceStr"], str(config["timestamp"]), "http://testserver/sidebar/home"
    )
    assert agent["signature"] == js_signature(
        tickets["agent"]["ticket"], agent["nonceStr"], str(agent["timestamp"]), "http://testserver/sidebar/home"
    )
    assert agent["agentid"] == s.setup.corp.agent_id
    for url in ("https://evil.example/sidebar/home", "http://testserver/admin", ""):
        assert client.get("/sidebar/jssdk", params={"url": url}).status_code == 422


def _csrf(client: TestClient, s: SidebarSetup) -> str:
    match = _CSRF.search(client.get(f"/sidebar/c?eu={s.external_userid}").text)
    assert match
    return match.group(1)


def test_oauth_redirect_and_jssdk_host_come_from_public_url(
    settings: Settings, database: Database, db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    db.commit()
    app = create_app(
        settings.model_copy(update={"public_url": "https://siyu.example/"}),
        database=database,
        clock=clock,
        run_worker=False,
    )
    with TestClient(app, follow_redirects=False) as client:
        start = client.get(f"/sidebar?ws={s.setup.workspace.id}", headers={"Host": "evil.example"})
        query = parse_qs(urlsplit(start.headers["location"].split("#")[0]).query)
        assert query["redirect_uri"] == ["https://siyu.example/sidebar/oauth"]
        value, _csrf_token = auth.session_cookie_value(
            s.setup.workspace.id, s.staff.id, secret=settings.session_secret(), clock=clock
        )
        client.cookies.set(auth.COOKIE_NAME, value, domain="testserver.local", path="/sidebar")
        own = client.get("/sidebar/jssdk", params={"url": "https://siyu.example/sidebar/home"})
        assert own.status_code == 200
        forged = client.get(
            "/sidebar/jssdk", params={"url": "http://evil.example/sidebar/home"}, headers={"Host": "evil.example"}
        )
        assert forged.status_code == 422


def test_oauth_answer_replayed_in_another_browser_is_refused(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient, app: FastAPI
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    db.commit()
    open_chat(fake_wecom.fake, s.setup.corp.corp_id, userid="zhangli", external_userid=s.external_userid)
    start = client.get(f"/sidebar?ws={s.setup.workspace.id}")
    assert auth.NONCE_COOKIE in start.headers["set-cookie"] and "HttpOnly" in start.headers["set-cookie"]
    back = urlsplit(requests.get(start.headers["location"], allow_redirects=False, timeout=5).headers["location"])
    with TestClient(app, follow_redirects=False) as victim:  # the attacker's code+state, the victim's browser
        refused = victim.get(f"{back.path}?{back.query}")
        assert refused.status_code == 401
        assert auth.COOKIE_NAME + "=" not in refused.headers.get("set-cookie", "")
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 303 and done.headers["location"] == "/sidebar/home"


def test_forms_for_a_customer_who_is_not_hers_or_in_another_workspace_write_nothing(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    tag = make_tag(db, workspace=s.setup.workspace, name="高意向")
    script = Script(
        workspace_id=s.setup.workspace.id,
        stage="greeting",
        title="问候",
        body="您好",
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(script)
    stranger = make_customer(db, actor=Actor.system(s.setup.workspace.id), clock=clock, name="路人").customer
    elsewhere = sidebar_setup(db, clock=clock, fake=fake_wecom, userid="wangwu")
    db.commit()
    sign_in(client, fake_wecom, s)
    csrf = _csrf(client, s)
    for customer_id, status in ((stranger.id, 403), (elsewhere.customer.id, 404)):
        url = f"/sidebar/c/{customer_id}"
        tags = client.post(url + "/tags", data={"csrf_token": csrf, "tag_id": str(tag.id), "eu": s.external_userid})
        notes = client.post(url + "/notes", data={"csrf_token": csrf, "text": "x", "nonce": "n"})
        sent = client.post(url + "/sent", data={"csrf_token": csrf, "kind": "script", "item_id": str(script.id)})
        assert (tags.status_code, notes.status_code, sent.status_code) == (status, status, status)
    assert db.scalars(select(CustomerTag.id)).all() == []
    assert (
        db.scalars(select(CustomerEvent.id).where(CustomerEvent.type.in_(["note.added", "sidebar.sent"]))).all() == []
    )
    assert client.get(f"/sidebar/c?eu={elsewhere.external_userid}").status_code == 404  # A's cookie, B's customer


def test_record_sent_over_http(db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    now = clock.now()
    script = Script(
        workspace_id=s.setup.workspace.id, stage="greeting", title="问候", body="您好", created_at=now, updated_at=now
    )
    db.add(script)
    db.commit()
    sign_in(client, fake_wecom, s)
    csrf = _csrf(client, s)
    url = f"/sidebar/c/{s.customer.id}/sent"
    assert client.post(url, data={"csrf_token": "no", "kind": "script", "item_id": str(script.id)}).status_code == 403
    bad = client.post(url, data={"csrf_token": csrf, "kind": "script", "item_id": "x"})
    assert bad.status_code == 422 and "item_id" in bad.text
    ok = client.post(url, data={"csrf_token": csrf, "kind": "script", "item_id": str(script.id)})
    assert (ok.status_code, ok.json()) == (200, {"ok": True})
    events = db.scalars(select(CustomerEvent).where(CustomerEvent.type == "sidebar.sent")).all()
    assert [(e.customer_id, e.properties["item_id"]) for e in events] == [(s.customer.id, script.id)]


def test_deactivated_staff_with_a_valid_cookie_is_refused(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    db.commit()
    sign_in(client, fake_wecom, s)
    s.staff.is_active = False
    db.commit()
    for response in (client.get("/sidebar/home"), client.get(f"/sidebar/c?eu={s.external_userid}")):
        assert response.status_code == 403 and "还不是本品牌的导购" in response.text


def test_entry_errors_name_the_field_and_unconfigured_workspaces_are_404(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    bare = make_workspace(db, clock=clock, name="无企微")
    db.commit()
    assert client.get(f"/sidebar?ws={bare.id}").status_code == 404
    bad = client.get("/sidebar?ws=abc")
    assert bad.status_code == 422 and "ws is invalid" in bad.text
    assert client.get(f"/sidebar?ws={s.setup.workspace.id}").status_code == 302


def test_jssdk_ticket_failure_is_a_502_and_the_integrations_last_error(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    db.commit()
    sign_in(client, fake_wecom, s)
    s.setup.corp.fail_next("get_jsapi_ticket", 45009)
    failed = client.get("/sidebar/jssdk", params={"url": "http://testserver/sidebar/home"})
    assert (failed.status_code, failed.json()) == (502, {"error": "wecom_unavailable"})
    db.refresh(s.setup.integration)
    assert s.setup.integration.last_error is not None and "get_jsapi_ticket" in s.setup.integration.last_error


def test_tag_form_applies_the_difference_and_a_double_tapped_note_is_one(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    a, b = make_tag(db, workspace=s.setup.workspace, name="甲"), make_tag(db, workspace=s.setup.workspace, name="乙")
    db.commit()
    sign_in(client, fake_wecom, s)
    page = client.get(f"/sidebar/c?eu={s.external_userid}").text
    csrf = _CSRF.search(page).group(1)  # type: ignore[union-attr]
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert 'name="original_tag_id"' not in page
    db.add(
        CustomerTag(
            workspace_id=s.setup.workspace.id,
            customer_id=s.customer.id,
            tag_id=b.id,
            source="manual",
            assigned_at=clock.now(),
            assigned_by="someone else",
        )
    )
    db.commit()
    saved = client.post(
        f"/sidebar/c/{s.customer.id}/tags", data={"csrf_token": csrf, "tag_id": str(a.id), "eu": s.external_userid}
    )
    assert saved.status_code == 303
    assert set(db.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == s.customer.id))) == {a.id, b.id}
    for _ in range(2):
        posted = client.post(
            f"/sidebar/c/{s.customer.id}/notes",
            data={"csrf_token": csrf, "text": "周末到店", "nonce": nonce, "eu": s.external_userid},
        )
        assert posted.status_code == 303
    assert len(db.scalars(select(CustomerEvent.id).where(CustomerEvent.type == "note.added")).all()) == 1


def test_save_tags_commits_before_mark_tag_and_records_the_failure_after(
    db: Session,
    clock: FrozenClock,
    database: Database,
    fake_wecom: RunningFake,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mark_tag is sent with no transaction open, once the tag row is committed; WeCom's refusal
    is written afterwards in a transaction of its own."""
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    s.setup.corp.table("tag_groups")["etGroup1"] = {
        "group_id": "etGroup1",
        "group_name": "客户分层",
        "create_time": 0,
        "order": 0,
        "tag": [{"id": "etVIP001", "name": "VIP", "create_time": 0, "order": 0}],
    }
    vip = make_tag(db, workspace=s.setup.workspace, name="VIP")
    vip.wecom_tag_id = "etVIP001"
    db.commit()
    sign_in(client, fake_wecom, s)
    csrf = _CSRF.search(client.get(f"/sidebar/c?eu={s.external_userid}").text).group(1)  # type: ignore[union-attr]
    open_transactions = [0]
    seen: list[tuple[int, list[int]]] = []
    transaction = database.transaction

    @contextmanager
    def counted(*, read_only: bool = False) -> Iterator[Session]:
        open_transactions[0] += 1
        try:
            with transaction(read_only=read_only) as session:
                yield session
        finally:
            open_transactions[0] -= 1

    call = WecomClient.call

    def watched(self: WecomClient, method: str, api: str, **kwargs: Any) -> Any:
        if api == "externalcontact/mark_tag":
            depth = open_transactions[0]
            with transaction(read_only=True) as session:
                tags = list(session.scalars(select(CustomerTag.tag_id).where(CustomerTag.customer_id == s.customer.id)))
            seen.append((depth, tags))
        return call(self, method, api, **kwargs)

    monkeypatch.setattr(database, "transaction", counted)
    monkeypatch.setattr(WecomClient, "call", watched)
    s.setup.corp.fail_next("externalcontact/mark_tag", 40096)
    saved = client.post(
        f"/sidebar/c/{s.customer.id}/tags", data={"csrf_token": csrf, "tag_id": str(vip.id), "eu": s.external_userid}
    )
    assert saved.status_code == 303 and saved.headers["location"].endswith("notice=tags_wecom_failed")
    assert seen == [(0, [vip.id])]  # no transaction open, the tag already committed
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == s.setup.workspace.id))
    assert integration is not None
    db.refresh(integration)
    assert integration.last_error is not None and "mark_tag" in integration.last_error
