"""Sidebar services: OAuth identity, JS-SDK signatures, the customer card, tags, notes, sends, tasks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.timeline import system_event
from siyu.db import Database
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.sidebar import issue_code, issue_outsider_code, js_signature
from siyu.integrations.wecom.sidebar import auth, jssdk, service
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import (
    AddTask,
    AddTaskList,
    AddTaskStatus,
    ContentItem,
    ContentKind,
    CustomerEvent,
    IdentityType,
    Job,
    Script,
    StaffTask,
    StaffTaskStatus,
)
from tests.factories import make_customer, make_relationship, make_tag
from tests.integrations.wecom.helpers import wecom_staff
from tests.integrations.wecom.sidebar.factories import SidebarSetup, sidebar_setup


def test_authorize_url_goes_to_wecom_or_to_the_fake(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    url = auth.authorize_url(s.setup.config, redirect_uri="https://siyu.example/sidebar/oauth", state="st")
    assert url.startswith(fake_wecom.url + "/connect/oauth2/authorize?")
    assert url.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "appid": [s.setup.config.corp_id],
        "redirect_uri": ["https://siyu.example/sidebar/oauth"],
        "response_type": ["code"],
        "scope": ["snsapi_base"],
        "state": ["st"],
        "agentid": [s.setup.corp.agent_id],
    }
    s.setup.integration.agent_id = None
    s.setup.integration.is_fake = False
    from siyu.integrations.wecom.config import config_of

    real = auth.authorize_url(config_of(s.setup.integration), redirect_uri="https://x/sidebar/oauth", state="st")
    assert real.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?appid=")
    assert "agentid" not in parse_qs(urlsplit(real).query)


def test_code_identifies_the_staff_member_once(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    code = issue_code(s.setup.corp, "zhangli")
    assert auth.staff_for_code(db, s.setup.config, code).id == s.staff.id
    with pytest.raises(WecomError) as used:
        auth.staff_for_code(db, s.setup.config, code)
    assert used.value.code == 40029
    with pytest.raises(auth.UnknownStaff):
        auth.staff_for_code(db, s.setup.config, issue_code(s.setup.corp, "stranger"))
    s.staff.is_active = False
    with pytest.raises(auth.UnknownStaff):
        auth.staff_for_code(db, s.setup.config, issue_code(s.setup.corp, "zhangli"))


def test_fake_getuserinfo_answers_the_current_shapes_and_non_members_are_refused(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    client = client_for(s.setup.config, secret="app")
    member = client.call("GET", "auth/getuserinfo", params={"code": issue_code(s.setup.corp, "zhangli")})
    assert (member["userid"], "UserId" in member, "user_ticket" in member) == ("zhangli", False, False)
    private = issue_code(s.setup.corp, "zhangli", scope="snsapi_privateinfo")
    assert client.call("GET", "auth/getuserinfo", params={"code": private})["user_ticket"]
    outsider = issue_outsider_code(s.setup.corp, openid="oWx123", external_userid=s.external_userid)
    answer = client.call("GET", "auth/getuserinfo", params={"code": outsider})
    assert (answer["openid"], answer["external_userid"], "userid" in answer) == ("oWx123", s.external_userid, False)
    with pytest.raises(auth.UnknownStaff):
        auth.staff_for_code(db, s.setup.config, issue_outsider_code(s.setup.corp, openid="oWx123"))


def test_fake_authorize_redirects_with_a_code_for_the_open_chat_member(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    url = auth.authorize_url(s.setup.config, redirect_uri="http://siyu.test/sidebar/oauth?x=1", state="abc")
    assert requests.get(url, allow_redirects=False, timeout=5).status_code == 400  # nobody signed in
    requests.post(
        fake_wecom.url + "/sim/sidebar/open_chat",
        json={"corp_id": s.setup.corp.corp_id, "userid": "zhangli", "external_userid": s.external_userid},
        timeout=5,
    ).raise_for_status()
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    target = urlsplit(answer.headers["location"])
    assert (target.netloc, target.path) == ("siyu.test", "/sidebar/oauth")
    query = parse_qs(target.query)
    assert query["state"] == ["abc"] and query["x"] == ["1"]
    assert auth.staff_for_code(db, s.setup.config, query["code"][0]).id == s.staff.id


def test_session_cookie_lasts_two_hours(clock: FrozenClock) -> None:
    value, _csrf = auth.session_cookie_value(7, 42, secret="k", clock=clock)
    clock.advance(timedelta(hours=1, minutes=59))
    assert auth.read_session_cookie(value, secret="k", clock=clock).staff_id == 42
    clock.advance(timedelta(minutes=1, seconds=1))
    with pytest.raises(auth.SidebarSessionInvalid):
        auth.read_session_cookie(value, secret="k", clock=clock)


def test_session_cookie_round_trip_expiry_and_forgery(clock: FrozenClock) -> None:
    value, csrf = auth.session_cookie_value(7, 42, secret="k", clock=clock)
    assert auth.read_session_cookie(value, secret="k", clock=clock) == auth.SidebarSession(7, 42, csrf)
    with pytest.raises(auth.SidebarSessionInvalid):
        auth.read_session_cookie(value, secret="other", clock=clock)
    with pytest.raises(auth.SidebarSessionInvalid):
        auth.read_session_cookie(value[:-2] + "xx", secret="k", clock=clock)
    with pytest.raises(auth.SidebarSessionInvalid):
        auth.read_session_cookie(None, secret="k", clock=clock)
    clock.advance(timedelta(hours=auth.SESSION_HOURS, seconds=1))
    with pytest.raises(auth.SidebarSessionInvalid):
        auth.read_session_cookie(value, secret="k", clock=clock)


def test_state_is_bound_to_the_workspace_and_the_browser_nonce_and_expires(clock: FrozenClock) -> None:
    nonce = auth.new_nonce()
    token = auth.state_token(5, nonce, secret="k", clock=clock)
    assert auth.read_state(token, secret="k", clock=clock, nonce=nonce) == 5
    for other in (None, "", auth.new_nonce()):
        with pytest.raises(auth.SidebarSessionInvalid):
            auth.read_state(token, secret="k", clock=clock, nonce=other)
    clock.advance(timedelta(minutes=auth.STATE_MINUTES, seconds=1))
    with pytest.raises(auth.SidebarSessionInvalid):
        auth.read_state(token, secret="k", clock=clock, nonce=nonce)


def test_js_sdk_signatures_match_the_tickets_and_tickets_are_cached(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    url = "https://siyu.example/sidebar/c?eu=wm1"
    first = jssdk.js_sdk_config(s.setup.config, url=url + "#top", clock=clock)
    table = s.setup.corp.table("sidebar")["tickets"]
    ts = str(int(clock.now().timestamp()))
    assert first.timestamp == int(ts)
    assert first.signature == js_signature(table["corp"]["ticket"], first.nonce_str, ts, url)
    assert first.agent_signature == js_signature(table["agent"]["ticket"], first.nonce_str, ts, url)
    assert first.as_json()["agentConfig"]["agentid"] == s.setup.corp.agent_id
    jssdk.js_sdk_config(s.setup.config, url=url, clock=clock)
    assert s.setup.corp.calls_of("get_jsapi_ticket") == 1
    assert s.setup.corp.calls_of("ticket/get") == 1
    answer = requests.get(
        fake_wecom.url + "/sidebar/verify",
        params={
            "corpid": s.setup.corp.corp_id,
            "url": url,
            "noncestr": first.nonce_str,
            "timestamp": ts,
            "signature": first.signature,
        },
        timeout=5,
    ).json()
    assert answer["errcode"] == 0
    bad = requests.get(
        fake_wecom.url + "/sidebar/verify",
        params={"corpid": s.setup.corp.corp_id, "url": url, "noncestr": "x", "timestamp": ts, "signature": "f" * 40},
        timeout=5,
    ).json()
    assert bad["errcode"] == 40093


def test_signature_matches_wecoms_published_example() -> None:
    ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    signature = jssdk.sign(
        ticket, nonce_str="Wm3WZYTPz0wzccnW", timestamp=1414587457, url="http://mp.weixin.qq.com?params=value"
    )
    assert signature == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def test_refresh_drops_cached_tickets_at_most_once_a_minute(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    jssdk.js_sdk_config(s.setup.config, url="https://x/sidebar/home", clock=clock)
    assert jssdk.forget_tickets(s.setup.config, clock=clock) is True
    jssdk.js_sdk_config(s.setup.config, url="https://x/sidebar/home", clock=clock)
    assert s.setup.corp.calls_of("get_jsapi_ticket") == 2
    assert jssdk.forget_tickets(s.setup.config, clock=clock) is False
    jssdk.js_sdk_config(s.setup.config, url="https://x/sidebar/home", clock=clock)
    assert s.setup.corp.calls_of("get_jsapi_ticket") == 2


def test_ticket_error_is_a_wecom_error(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    s.setup.corp.fail_next("get_jsapi_ticket", 45009)
    with pytest.raises(WecomError) as failed:
        jssdk.js_sdk_config(s.setup.config, url="https://x/sidebar/home", clock=clock)
    assert failed.value.code == 45009 and failed.value.retryable


def test_customer_card_only_for_a_friend(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    found = service.customer_by_external_userid(db, s.setup.workspace.id, s.external_userid)
    assert found.id == s.customer.id
    card = service.customer_card(db, s.staff, s.customer.id, clock=clock)
    assert card.customer.name == "王芳"
    assert [(i.type, i.value) for i in card.identities if i.type == IdentityType.WECOM_EXTERNAL_USERID] == [
        (IdentityType.WECOM_EXTERNAL_USERID, s.external_userid)
    ]
    assert (card.tier, card.points, card.unused_coupons, card.orders) == (None, 0, 0, [])
    other = wecom_staff(db, s.setup, clock=clock, userid="lisi", name="李四")
    with pytest.raises(service.NotYourCustomer):
        service.customer_card(db, other, s.customer.id, clock=clock)
    s.edge.removed_at = clock.now()
    db.flush()
    with pytest.raises(service.NotYourCustomer):
        service.customer_card(db, s.staff, s.customer.id, clock=clock)
    with pytest.raises(service.UnknownContact):
        service.customer_by_external_userid(db, s.setup.workspace.id, "wmNobody")


def _wecom_tags(s: SidebarSetup, *ids: str) -> None:
    """Corp tags in the fake (H2's fake `mark_tag` only accepts known tag ids)."""
    s.setup.corp.table("tag_groups")["etGroup1"] = {
        "group_id": "etGroup1",
        "group_name": "客户分层",
        "create_time": 0,
        "order": 0,
        "tag": [{"id": i, "name": i, "create_time": 0, "order": n} for n, i in enumerate(ids)],
    }


def _edge_tags(s: SidebarSetup, external_userid: str, userid: str = "zhangli") -> list[str]:
    follow = s.setup.corp.follow(external_userid, userid)
    assert follow is not None
    return sorted(t["tag_id"] for t in follow.get("tags") or [])


def test_set_tags_applies_only_the_staff_members_edit(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    a, b, c = (make_tag(db, workspace=s.setup.workspace, name=n) for n in ("高意向", "待跟进", "老客"))
    service.set_tags(db, s.staff, s.customer.id, [a.id], original=[], clock=clock, config=None)
    # her page showed {a}; meanwhile someone else tagged c; she ticks b and unticks a
    service.set_tags(db, s.staff, s.customer.id, [c.id], original=[], clock=clock, config=None)
    change = service.set_tags(db, s.staff, s.customer.id, [b.id], original=[a.id], clock=clock, config=None)
    assert (change.added, change.removed) == ([b.id], [a.id])
    assert service.customer_tag_ids(db, s.customer.id) == {b.id, c.id}
    with pytest.raises(InvalidInput) as bad:
        service.set_tags(db, s.staff, s.customer.id, [a.id, 999_999_999], original=[], clock=clock, config=None)
    assert bad.value.details == {"field": "tag_id"}
    assert service.customer_tag_ids(db, s.customer.id) == {b.id, c.id}


def test_set_tags_marks_wecom_linked_tags_on_her_edge(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    _wecom_tags(s, "etVIP001", "etOld001")
    vip = make_tag(db, workspace=s.setup.workspace, name="VIP")
    old = make_tag(db, workspace=s.setup.workspace, name="老会员")
    local = make_tag(db, workspace=s.setup.workspace, name="本地")
    vip.wecom_tag_id, old.wecom_tag_id = "etVIP001", "etOld001"
    s.setup.corp.follows[f"{s.external_userid}|zhangli"]["tags"] = [{"tag_id": "etOld001", "type": 1}]
    service.set_tags(db, s.staff, s.customer.id, [old.id], original=[], clock=clock, config=None)
    change = service.set_tags(
        db,
        s.staff,
        s.customer.id,
        [vip.id, local.id],
        original=[old.id],
        external_userid=s.external_userid,
        clock=clock,
        config=s.setup.config,
    )
    assert s.setup.corp.calls_of("externalcontact/mark_tag") == 0  # sent after the commit
    assert change.mark is not None and change.mark.body["add_tag"] == ["etVIP001"]
    change = service.mark_tags(database, change, clock=clock, config=s.setup.config)
    assert (change.added, change.removed, change.wecom_error) == (sorted([vip.id, local.id]), [old.id], None)
    assert _edge_tags(s, s.external_userid) == ["etVIP001"]
    assert s.setup.corp.calls_of("externalcontact/mark_tag") == 1
    assert service.customer_tag_ids(db, s.customer.id) == {vip.id, local.id}


def test_set_tags_uses_the_chats_external_userid_of_a_merged_customer(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    _wecom_tags(s, "etVIP001")
    vip = make_tag(db, workspace=s.setup.workspace, name="VIP")
    vip.wecom_tag_id = "etVIP001"
    ws = s.setup.workspace.id
    merged = make_customer(
        db,
        actor=Actor.system(ws),
        clock=clock,
        name="李娜",
        identities=[
            (IdentityType.WECOM_EXTERNAL_USERID, f"wm{ws}OldAcct"),
            (IdentityType.WECOM_EXTERNAL_USERID, f"wm{ws}NewAcct"),
        ],
    ).customer
    make_relationship(db, customer=merged, staff=s.staff, added_at=clock.now())
    s.setup.corp.follows[f"wm{ws}NewAcct|zhangli"] = {"userid": "zhangli", "createtime": 0, "tags": []}
    with pytest.raises(InvalidInput) as foreign:  # another customer's contact: refused before any write
        service.set_tags(
            db,
            s.staff,
            merged.id,
            [vip.id],
            original=[],
            external_userid=s.external_userid,
            clock=clock,
            config=s.setup.config,
        )
    assert foreign.value.details == {"field": "eu"}
    assert service.customer_tag_ids(db, merged.id) == set()
    change = service.set_tags(
        db,
        s.staff,
        merged.id,
        [vip.id],
        original=[],
        external_userid=f"wm{ws}NewAcct",
        clock=clock,
        config=s.setup.config,
    )
    change = service.mark_tags(database, change, clock=clock, config=s.setup.config)
    assert change.wecom_error is None
    assert _edge_tags(s, f"wm{ws}NewAcct") == ["etVIP001"]


def test_wecom_refusing_mark_tag_keeps_siyus_change_and_retryable_ones_are_queued(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    _wecom_tags(s, "etVIP001", "etOld001")
    vip = make_tag(db, workspace=s.setup.workspace, name="VIP")
    old = make_tag(db, workspace=s.setup.workspace, name="老会员")
    vip.wecom_tag_id, old.wecom_tag_id = "etVIP001", "etOld001"
    s.setup.corp.fail_next("externalcontact/mark_tag", 40096)
    args = {"external_userid": s.external_userid, "clock": clock, "config": s.setup.config}
    change = service.set_tags(db, s.staff, s.customer.id, [old.id], original=[], **args)  # type: ignore[arg-type]
    change = service.mark_tags(database, change, clock=clock, config=s.setup.config)
    assert change.wecom_error is not None and "mark_tag" in change.wecom_error
    assert service.customer_tag_ids(db, s.customer.id) == {old.id}
    db.refresh(s.setup.integration)
    assert s.setup.integration.last_error is not None and "mark_tag" in s.setup.integration.last_error
    assert db.scalars(select(Job).where(Job.kind == "wecom_mark_tag")).all() == []  # 40096 is final
    s.setup.corp.fail_next("externalcontact/mark_tag", 45009)
    change = service.set_tags(db, s.staff, s.customer.id, [vip.id], original=[old.id], **args)  # type: ignore[arg-type]
    change = service.mark_tags(database, change, clock=clock, config=s.setup.config)
    assert change.wecom_error is not None and "接口调用超过频率限制" in change.wecom_error
    jobs = db.scalars(select(Job).where(Job.kind == "wecom_mark_tag").order_by(Job.id)).all()
    assert [(j.workspace_id, j.args) for j in jobs] == [
        (s.setup.workspace.id, {"customer_id": s.customer.id, "tag_id": vip.id, "is_added": True}),
        (s.setup.workspace.id, {"customer_id": s.customer.id, "tag_id": old.id, "is_added": False}),
    ]


def test_notes_are_timeline_events_with_the_author(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    event = service.add_note(db, s.staff, s.customer.id, "  喜欢玫瑰香型  ", clock=clock)
    assert (event.type, event.properties) == (
        "note.added",
        {"text": "喜欢玫瑰香型", "staff_id": s.staff.id, "staff_name": "张丽"},
    )
    assert [n.id for n in service.customer_card(db, s.staff, s.customer.id, clock=clock).notes] == [event.id]
    for text in ("   ", "长" * 1001):
        with pytest.raises(InvalidInput):
            service.add_note(db, s.staff, s.customer.id, text, clock=clock)
    notes = db.scalars(
        select(CustomerEvent.id).where(CustomerEvent.customer_id == s.customer.id, CustomerEvent.type == "note.added")
    )
    assert list(notes) == [event.id]


def test_sendables_render_for_the_customer(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    ws = s.setup.workspace.id
    now = clock.now()
    script = Script(
        workspace_id=ws, stage="greeting", title="问候", body="{{ name }}您好", created_at=now, updated_at=now
    )
    link = ContentItem(
        workspace_id=ws,
        name="新品",
        kind=ContentKind.LINK,
        body="新品上市",
        title="玫瑰系列",
        link_url="https://shop.example/rose",
        created_at=now,
        updated_at=now,
    )
    db.add_all([script, link])
    db.flush()
    items = {(i.kind, i.id): i for i in service.sendables(db, s.staff, s.customer.id)}
    assert items[("script", script.id)].message == {"msgtype": "text", "text": {"content": "王芳您好"}}
    assert items[("content", link.id)].message == {
        "msgtype": "news",
        "news": {"link": "https://shop.example/rose", "title": "玫瑰系列", "desc": "新品上市", "imgUrl": ""},
    }
    service.record_sent(db, s.staff, s.customer.id, "script", script.id, clock=clock)
    sent = db.scalar(select(CustomerEvent).where(CustomerEvent.type == "sidebar.sent"))
    assert sent is not None and sent.properties == {
        "kind": "script",
        "item_id": script.id,
        "title": "问候",
        "staff_id": s.staff.id,
    }
    with pytest.raises(InvalidInput):
        service.record_sent(db, s.staff, s.customer.id, "content", 999_999_999, clock=clock)


def test_staff_work_lists_due_tasks_and_add_tasks(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    ws = s.setup.workspace.id
    now = clock.now()

    def task(key: str, due: timedelta | None, status: StaffTaskStatus = StaffTaskStatus.OPEN) -> StaffTask:
        row = StaffTask(
            workspace_id=ws,
            staff_id=s.staff.id,
            customer_id=s.customer.id,
            source="sop",
            source_id=1,
            idempotency_key=f"{ws}-{key}",
            title=key,
            status=status,
            due_at=now + due if due is not None else None,
            created_at=now,
        )
        db.add(row)
        return row

    task("due-today", timedelta(hours=2))
    task("undated", None)
    task("next-week", timedelta(days=7))
    task("done", timedelta(hours=1), StaffTaskStatus.DONE)
    other = make_customer(db, actor=Actor.system(ws), clock=clock, name="路人").customer
    make_relationship(db, customer=other, staff=s.staff, added_at=now)
    task_list = AddTaskList(
        workspace_id=ws, name="门店名单", greeting="您好", daily_limit=20, starts_on=now.date(), created_at=now
    )
    db.add(task_list)
    db.flush()
    today = now.date()
    for phone, due_on, status in (
        ("+8613800000001", today, AddTaskStatus.PENDING),
        ("+8613800000002", today + timedelta(days=1), AddTaskStatus.PENDING),
        ("+8613800000003", date(2026, 11, 20), AddTaskStatus.ADDED),
    ):
        db.add(
            AddTask(
                workspace_id=ws, list_id=task_list.id, staff_id=s.staff.id, phone=phone, due_on=due_on, status=status
            )
        )
    db.flush()
    work = service.staff_work(db, s.staff, clock=clock)
    assert sorted(t.title for t in work.tasks) == ["due-today", "undated"]
    assert [t.phone for t in work.add_tasks] == ["+8613800000001"]


def test_a_double_tapped_note_form_adds_one_note(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    first = service.add_note(db, s.staff, s.customer.id, "周末到店", nonce="form-1", clock=clock)
    clock.advance(timedelta(milliseconds=300))
    again = service.add_note(db, s.staff, s.customer.id, "周末到店", nonce="form-1", clock=clock)
    other = service.add_note(db, s.staff, s.customer.id, "周末到店", nonce="form-2", clock=clock)
    assert again.id == first.id and other.id != first.id
    notes = db.scalars(select(CustomerEvent.id).where(CustomerEvent.type == "note.added")).all()
    assert sorted(notes) == sorted([first.id, other.id])


def test_notes_stay_on_the_card_after_many_later_events(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    note = service.add_note(db, s.staff, s.customer.id, "过敏体质", nonce="n1", clock=clock)
    for n in range(45):
        clock.advance(timedelta(minutes=1))
        system_event(db, s.customer, "order.paid", f"sb-test-{s.customer.id}-{n}", clock.now(), clock, {})
    db.flush()
    card = service.customer_card(db, s.staff, s.customer.id, clock=clock)
    assert [n.id for n in card.notes] == [note.id]
    assert len(card.timeline) == service.LIST_LIMIT
    assert all(e.type == "order.paid" for e in card.timeline)


def test_image_items_are_marked_unsendable(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    now = clock.now()
    image = ContentItem(
        workspace_id=s.setup.workspace.id,
        name="海报",
        kind=ContentKind.IMAGE,
        body="新品海报",
        media_url="https://cdn.example/poster.png",
        created_at=now,
        updated_at=now,
    )
    db.add(image)
    db.flush()
    [item] = [i for i in service.sendables(db, s.staff, s.customer.id) if i.id == image.id]
    assert (item.unsupported, item.message, item.error) == (True, {}, None)


def test_staff_work_uses_the_brands_local_day(db: Session, fake_wecom: RunningFake) -> None:
    clock = FrozenClock(datetime(2026, 11, 23, 17, 0, tzinfo=UTC))  # 2026-11-24 01:00 in Shanghai
    s = sidebar_setup(db, clock=clock, fake=fake_wecom)
    ws = s.setup.workspace.id
    now = clock.now()
    for key, due in (
        ("end-of-tomorrow", datetime(2026, 11, 25, 15, 59, tzinfo=UTC)),  # 11-25 23:59 local
        ("day-after", datetime(2026, 11, 25, 16, 0, tzinfo=UTC)),  # 11-26 00:00 local
    ):
        db.add(
            StaffTask(
                workspace_id=ws,
                staff_id=s.staff.id,
                customer_id=s.customer.id,
                source="sop",
                source_id=1,
                idempotency_key=f"{ws}-{key}",
                title=key,
                status=StaffTaskStatus.OPEN,
                due_at=due,
                created_at=now,
            )
        )
    task_list = AddTaskList(
        workspace_id=ws, name="门店名单", greeting="您好", daily_limit=20, starts_on=date(2026, 11, 23), created_at=now
    )
    db.add(task_list)
    db.flush()
    for phone, due_on in (("+8613800000011", date(2026, 11, 24)), ("+8613800000012", date(2026, 11, 25))):
        db.add(AddTask(workspace_id=ws, list_id=task_list.id, staff_id=s.staff.id, phone=phone, due_on=due_on))
    db.flush()
    work = service.staff_work(db, s.staff, clock=clock)
    assert [t.title for t in work.tasks] == ["end-of-tomorrow"]
    assert [t.phone for t in work.add_tasks] == ["+8613800000011"]
