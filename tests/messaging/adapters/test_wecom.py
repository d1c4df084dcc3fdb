"""WeCom mass messages against a local server speaking WeCom's documented JSON shapes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging import admission
from siyu.messaging.adapters import adapter_for
from siyu.messaging.adapters.base import Outcome, OutcomeKind
from siyu.messaging.adapters.wecom import send_group_post
from siyu.messaging.policy import Request
from siyu.messaging.sending import send_due
from siyu.messaging.tasks import poll_wecom_results
from siyu.models import AdapterKind, ChannelAccount, ContentKind, Delivery, TouchState, Workspace
from tests.factories import make_staff, make_workspace
from tests.messaging.adapters.fakes import FakeServer, Reply, fake_server
from tests.messaging.adapters.fakes import Request as HttpRequest
from tests.messaging.adapters.helpers import BACKOFF, Attempt, context, outgoing, queue, send_until_done
from tests.messaging.factories import make_account, make_content, make_policy

CREDENTIALS = {"corp_id": "ww1234567890", "secret": "customer-contact-secret"}
MSGID = "msgGCAAAXtWyujaWJHDDGi0mACas1w"


class FakeWecom:
    """gettoken, add_msg_template and get_groupmsg_send_result with token checks."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.tokens_issued = 0
        self.valid_token = ""
        self.fail_list: list[str] = []
        self.send_replies: list[Reply] = []
        self.results: list[dict[str, object]] = []
        server.route("GET", "/cgi-bin/gettoken", self.gettoken)
        server.route("POST", "/cgi-bin/externalcontact/add_msg_template", self.add_msg_template)
        server.route("POST", "/cgi-bin/externalcontact/get_groupmsg_send_result", self.send_result)

    @property
    def settings(self) -> dict[str, object]:
        return {"api_base_url": f"{self.server.url}/cgi-bin/", "timeout_s": 0.5}

    def gettoken(self, request: HttpRequest) -> Reply:
        if (request.query.get("corpid"), request.query.get("corpsecret")) != (
            CREDENTIALS["corp_id"],
            CREDENTIALS["secret"],
        ):
            return Reply(200, {"errcode": 40001, "errmsg": "invalid credential"})
        self.tokens_issued += 1
        self.valid_token = f"TOKEN{self.tokens_issued}"
        return Reply(200, {"errcode": 0, "errmsg": "ok", "access_token": self.valid_token, "expires_in": 7200})

    def add_msg_template(self, request: HttpRequest) -> Reply:
        if request.query.get("access_token") != self.valid_token:
            return Reply(200, {"errcode": 42001, "errmsg": "access_token expired"})
        if self.send_replies:
            return self.send_replies.pop(0)
        return Reply(200, {"errcode": 0, "errmsg": "ok", "fail_list": self.fail_list, "msgid": MSGID})

    def send_result(self, request: HttpRequest) -> Reply:
        if request.query.get("access_token") != self.valid_token:
            return Reply(200, {"errcode": 42001, "errmsg": "access_token expired"})
        cursor = request.json().get("cursor") or ""
        index = int(cursor or 0)
        page = self.results[index : index + 2]
        next_cursor = str(index + 2) if index + 2 < len(self.results) else ""
        return Reply(
            200, {"errcode": 0, "errmsg": "ok", "detail_list": [], "send_list": page, "next_cursor": next_cursor}
        )

    def templates(self) -> list[dict[str, object]]:
        return [r.json() for r in self.server.calls("/cgi-bin/externalcontact/add_msg_template")]


@pytest.fixture
def wecom() -> Iterator[FakeWecom]:
    with fake_server() as server:
        yield FakeWecom(server)


def _account(db: Session, clock: FrozenClock, wecom: FakeWecom) -> ChannelAccount:
    return _setup(db, clock, wecom)[1]


def _setup(db: Session, clock: FrozenClock, wecom: FakeWecom) -> tuple[Workspace, ChannelAccount]:
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.WECOM_CUSTOMER,
        settings=wecom.settings,
        credentials=CREDENTIALS,
    )
    return workspace, account


def test_send_creates_one_task_per_staff_and_maps_the_fail_list(
    db: Session, clock: FrozenClock, wecom: FakeWecom
) -> None:
    # given three customers of two staff members, one of whom WeCom cannot reach
    account = _account(db, clock, wecom)
    wecom.fail_list = ["wmB"]
    batch = [
        outgoing(1, "wmA", "双十一会员专享礼", staff_userid="zhangsan"),
        outgoing(2, "wmB", "双十一会员专享礼", staff_userid="zhangsan"),
        outgoing(3, "wmC", "双十一会员专享礼", staff_userid="lisi"),
    ]
    # when the batch is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then each staff member got one task with their customers, and the fail list is failed
    assert wecom.templates() == [
        {
            "chat_type": "single",
            "external_userid": ["wmA", "wmB"],
            "sender": "zhangsan",
            "text": {"content": "双十一会员专享礼"},
        },
        {"chat_type": "single", "external_userid": ["wmC"], "sender": "lisi", "text": {"content": "双十一会员专享礼"}},
    ]
    assert outcomes == [
        Outcome(1, OutcomeKind.SENT, provider_message_id=f"{MSGID}:wmA"),
        Outcome(2, OutcomeKind.FAILED, reason="wecom_fail_list", error="WeCom cannot send to this user"),
        Outcome(3, OutcomeKind.SENT, provider_message_id=f"{MSGID}:wmC"),
    ]
    assert wecom.tokens_issued == 1


def test_link_cards_and_images_become_attachments(db: Session, clock: FrozenClock, wecom: FakeWecom) -> None:
    # given a link card and an image
    account = _account(db, clock, wecom)
    link = outgoing(
        1,
        "wmA",
        "会员日",
        staff_userid="zhangsan",
        kind="link",
        title="会员日专场",
        description="全场八折",
        link="https://siyu.example/s/AbC123",
        media_url="https://cdn.example/cover.jpg",
    )
    image = outgoing(2, "wmB", "", staff_userid="zhangsan", kind="image", media_url="https://cdn.example/poster.png")
    # when they are sent
    adapter_for(account).send(context(account, clock, CREDENTIALS), [link, image])
    # then each went with its attachment in the documented shape
    first, second = wecom.templates()
    assert first["attachments"] == [
        {
            "msgtype": "link",
            "link": {
                "title": "会员日专场",
                "url": "https://siyu.example/s/AbC123",
                "picurl": "https://cdn.example/cover.jpg",
                "desc": "全场八折",
            },
        }
    ]
    assert second == {
        "chat_type": "single",
        "external_userid": ["wmB"],
        "sender": "zhangsan",
        "attachments": [{"msgtype": "image", "image": {"pic_url": "https://cdn.example/poster.png"}}],
    }


def test_an_expired_token_is_refreshed_once(db: Session, clock: FrozenClock, wecom: FakeWecom) -> None:
    # given a token WeCom has since expired
    account = _account(db, clock, wecom)
    adapter = adapter_for(account)
    adapter.send(context(account, clock, CREDENTIALS), [outgoing(1, "wmA", staff_userid="zhangsan")])
    wecom.valid_token = "ROTATED"
    # when the next batch is sent
    outcomes = adapter.send(context(account, clock, CREDENTIALS), [outgoing(2, "wmB", staff_userid="zhangsan")])
    # then the adapter fetched a new token and the call went through
    assert outcomes == [Outcome(2, OutcomeKind.SENT, provider_message_id=f"{MSGID}:wmB")]
    assert wecom.tokens_issued == 2


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(503, b"busy"), (OutcomeKind.RETRY, "http_503")),
        (Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}), (OutcomeKind.RETRY, "wecom_45009")),
        (Reply(200, {"errcode": -1, "errmsg": "system busy"}), (OutcomeKind.RETRY, "wecom_-1")),
        (Reply(200, {}, delay_s=1.5), (OutcomeKind.RETRY, "timeout")),
        (Reply(200, {"errcode": 41048, "errmsg": "no external userid"}), (OutcomeKind.FAILED, "wecom_41048")),
    ],
)
def test_provider_errors_map_to_retry_or_failure(
    db: Session, clock: FrozenClock, wecom: FakeWecom, reply: Reply, expected: tuple[OutcomeKind, str]
) -> None:
    # given WeCom answering with an error, a timeout or a 5xx
    account = _account(db, clock, wecom)
    wecom.send_replies = [reply]
    # when a batch is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), [outgoing(1, "wmA", staff_userid="zs")])
    # then every item gets the mapped outcome
    assert [(o.kind, o.reason) for o in outcomes] == [expected]


def test_check_fetches_a_token_and_names_the_bad_field(db: Session, clock: FrozenClock, wecom: FakeWecom) -> None:
    # given one account with a wrong secret and one with no corp id
    account = _account(db, clock, wecom)
    adapter = adapter_for(account)
    # when they are checked
    with pytest.raises(InvalidInput) as wrong:
        adapter.check(context(account, clock, dict(CREDENTIALS, secret="wrong")))
    with pytest.raises(InvalidInput) as missing:
        adapter.check(context(account, clock, {"secret": "x"}))
    # then the errors name the field; correct credentials pass
    assert wrong.value.details == {"field": "credentials.secret"}
    assert missing.value.details == {"field": "credentials.corp_id"}
    adapter.check(context(account, clock, CREDENTIALS))
    assert wecom.tokens_issued == 1


def test_send_due_retries_with_backoff_then_fails(
    db: Session, database: Database, clock: FrozenClock, wecom: FakeWecom
) -> None:
    # given a queued delivery and WeCom failing with 503 on every call
    ws, account = _setup(db, clock, wecom)
    staff = make_staff(db, workspace=ws, clock=clock, name="张三", wecom_user_id="zhangsan")
    item = make_content(db, workspace=ws, clock=clock)
    (delivery,) = queue(
        db, workspace=ws, clock=clock, account=account, content=item, recipients=[("王芳", "wmA")], staff=staff
    )
    wecom.send_replies = [Reply(503, b"busy") for _ in range(5)]
    # when the sender runs until the delivery leaves the queue
    history = send_until_done(db, database, clock, delivery.id)
    # then it was tried five times with growing waits, then failed with the reason
    assert history == [
        *(Attempt("queued", "http_503", n + 1, wait) for n, wait in enumerate(BACKOFF)),
        Attempt("failed", "http_503", 5, None),
    ]
    assert len(wecom.templates()) == 5


def test_results_polling_maps_delivered_not_friend_and_platform_capped(
    db: Session, database: Database, clock: FrozenClock, wecom: FakeWecom
) -> None:
    # given four customers sent one mass message from 张三, with a monthly WeCom cap in force
    ws, account = _setup(db, clock, wecom)
    make_policy(db, workspace=ws, clock=clock, platform_caps={"wecom_customer": {"month": 4}})
    staff = make_staff(db, workspace=ws, clock=clock, name="张三", wecom_user_id="zhangsan")
    item = make_content(db, workspace=ws, clock=clock, kind=ContentKind.TEXT)
    rows = queue(
        db,
        workspace=ws,
        clock=clock,
        account=account,
        content=item,
        recipients=[("王芳", "wmA"), ("李雷", "wmB"), ("韩梅梅", "wmC"), ("赵四", "wmD")],
        staff=staff,
    )
    config = admission.load_config(db, ws.id)
    request = Request(channel="wecom_customer", priority=2, send_at=clock.now(), content_hash="test")
    admission.admit(db, ws.id, config, [(r.customer_id, request) for r in rows], clock)
    for row in rows:  # as planning records the admitted send time whose slots the delivery took
        row.slot_at = clock.now()
    db.commit()
    send_due(database, clock)
    # ...and WeCom reports (over two pages): A received, B is no friend, C got another message, D pending
    sent_at = int(datetime(2026, 11, 23, 3, 15, tzinfo=UTC).timestamp())
    wecom.results = [
        {"external_userid": "wmA", "chat_id": "", "userid": "zhangsan", "status": 1, "send_time": sent_at},
        {"external_userid": "wmB", "userid": "zhangsan", "status": 2, "send_time": 0},
        {"external_userid": "wmC", "userid": "zhangsan", "status": 3, "send_time": 0},
        {"external_userid": "wmD", "userid": "zhangsan", "status": 0, "send_time": 0},
    ]
    clock.advance(timedelta(hours=2))
    # when the results are polled (twice: the second run finds nothing new)
    first = poll_wecom_results(database, clock)
    second = poll_wecom_results(database, clock)
    # then each status maps to the documented outcome
    db.expire_all()
    got = {r.address: (r.status, r.reason, r.delivered_at) for r in db.scalars(select(Delivery).order_by(Delivery.id))}
    assert got == {
        "wmA": ("delivered", None, datetime(2026, 11, 23, 3, 15, tzinfo=UTC)),
        "wmB": ("failed", "not_friend", None),
        "wmC": ("suppressed", "platform_capped", None),
        "wmD": ("sent", None, None),
    }
    assert first == {"checked": 1, "delivered": 1, "not_friend": 1, "platform_capped": 1, "errors": 0}
    assert second == {"checked": 1, "delivered": 0, "not_friend": 0, "platform_capped": 0, "errors": 0}
    polls = wecom.server.calls("/cgi-bin/externalcontact/get_groupmsg_send_result")
    assert [p.json() for p in polls[:2]] == [
        {"msgid": MSGID, "userid": "zhangsan", "limit": 1000},
        {"msgid": MSGID, "userid": "zhangsan", "limit": 1000, "cursor": "2"},
    ]
    # and the refused ones gave their monthly WeCom slot back; the delivered and pending ones keep it
    counts = {s.customer_id: s.counts for s in db.scalars(select(TouchState))}
    assert [counts[r.customer_id] for r in rows] == [
        {"m2026-11": {"platform:wecom_customer": 1}},
        {},
        {},
        {"m2026-11": {"platform:wecom_customer": 1}},
    ]


def test_group_posts_go_to_the_staff_members_groups(db: Session, clock: FrozenClock, wecom: FakeWecom) -> None:
    # given a WeCom group account
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.WECOM_GROUP,
        settings=wecom.settings,
        credentials=CREDENTIALS,
    )
    # when the calendar posts the morning message to two of 张三's groups
    post = send_group_post(
        account, CREDENTIALS, "zhangsan", {"kind": "text", "text": "早安，今日上新"}, clock, chat_ids=["wrA", "wrB"]
    )
    # then one group task went out and its msgid came back
    assert (post.kind, post.msgid) == (OutcomeKind.SENT, MSGID)
    assert wecom.templates() == [
        {
            "chat_type": "group",
            "sender": "zhangsan",
            "text": {"content": "早安，今日上新"},
            "chat_id_list": ["wrA", "wrB"],
        }
    ]
    assert adapter_for(account).capabilities.group_messages is True


def test_a_miniprogram_cover_is_uploaded_once_per_send(db: Session, clock: FrozenClock, wecom: FakeWecom) -> None:
    # given two personalised mini-program messages with the same cover image
    account = _account(db, clock, wecom)
    wecom.server.route("GET", "/cdn/cover.jpg", lambda _r: Reply(200, b"\xff\xd8\xff\xe0cover"))
    wecom.server.route(
        "POST",
        "/cgi-bin/media/upload",
        lambda _r: Reply(
            200, {"errcode": 0, "errmsg": "ok", "type": "image", "media_id": "MEDIA_1", "created_at": "1"}
        ),
    )
    card = {
        "kind": "miniprogram",
        "title": "会员中心",
        "media_url": f"{wecom.server.url}/cdn/cover.jpg",
        "miniprogram": {"appid": "wx8bd80126147df384", "page": "/pages/member"},
    }
    batch = [
        outgoing(1, "wmA", "王芳，积分到账", staff_userid="zhangsan", **card),
        outgoing(2, "wmB", "李雷，积分到账", staff_userid="zhangsan", **card),
    ]
    # when they are sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then the cover was uploaded once and both cards carry its media id
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT, OutcomeKind.SENT]
    uploads = wecom.server.calls("/cgi-bin/media/upload")
    assert [(u.query["type"], b"cover.jpg" in u.body) for u in uploads] == [("image", True)]
    assert [t["attachments"] for t in wecom.templates()] == [
        [
            {
                "msgtype": "miniprogram",
                "miniprogram": {
                    "title": "会员中心",
                    "appid": "wx8bd80126147df384",
                    "page": "/pages/member",
                    "pic_media_id": "MEDIA_1",
                },
            }
        ]
    ] * 2


def test_connection_errors_never_show_the_secret_or_the_token(db: Session, clock: FrozenClock) -> None:
    # given a WeCom that issued a token, then drops connections, then is gone altogether
    with fake_server() as server:
        wecom = FakeWecom(server)
        account = _account(db, clock, wecom)
        adapter = adapter_for(account)
        first = adapter.send(context(account, clock, CREDENTIALS), [outgoing(1, "wmA", staff_userid="zhangsan")])
        wecom.send_replies = [Reply(drop=True)]
        dropped = adapter.send(context(account, clock, CREDENTIALS), [outgoing(2, "wmB", staff_userid="zhangsan")])
        server.route("GET", "/cgi-bin/gettoken", lambda _r: Reply(drop=True))
        with pytest.raises(InvalidInput) as dropped_check:
            adapter.check(context(account, clock, CREDENTIALS))
    # when a batch is sent and the account is checked against the closed port (requests then
    # names the whole URL: access_token=… on the send, corpsecret=… on the token fetch)
    refused = adapter.send(context(account, clock, CREDENTIALS), [outgoing(3, "wmC", staff_userid="zhangsan")])
    with pytest.raises(InvalidInput) as refused_check:
        adapter.check(context(account, clock, CREDENTIALS))
    # then the sends are retried and the checks name the URL field, and no text carries a secret
    assert first == [Outcome(1, OutcomeKind.SENT, provider_message_id=f"{MSGID}:wmA")]
    assert [(o.kind, o.reason) for o in dropped + refused] == [
        (OutcomeKind.RETRY, "connection_error"),
        (OutcomeKind.RETRY, "connection_error"),
    ]
    assert dropped_check.value.details == refused_check.value.details == {"field": "settings.api_base_url"}
    texts = [str(o.error) for o in dropped + refused] + [dropped_check.value.message, refused_check.value.message]
    assert [t for t in texts if CREDENTIALS["secret"] in t or "TOKEN1" in t] == []
    assert "access_token=***" in texts[1]
    assert "corpsecret=***" in texts[3]
    assert refused_check.value.__cause__ is None


def test_a_mass_message_is_one_task_per_staff_member(db: Session, clock: FrozenClock, wecom: FakeWecom) -> None:
    # given 1,200 customers of two staff members, interleaved, all sent the campaign's link card
    # (each with its own unsubscribe link, which a WeCom message does not carry)
    account = _account(db, clock, wecom)
    card = {
        "kind": "link",
        "title": "双十一会员日",
        "link": "https://siyu.example/s/Camp11",
        "media_url": "https://cdn.example/cover.jpg",
    }
    batch = [
        outgoing(
            n,
            f"wm{n:04d}",
            "双十一会员专享礼，点击领取",
            staff_userid="zhangsan" if n % 2 else "lisi",
            unsubscribe_url=f"https://siyu.example/u/tok{n}",
            **card,
        )
        for n in range(1, 1201)
    ]
    # when the batch is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then WeCom got exactly two tasks, one per staff member with their 600 customers in order
    templates = wecom.templates()
    assert [(t["sender"], len(t["external_userid"])) for t in templates] == [("zhangsan", 600), ("lisi", 600)]  # type: ignore[arg-type]
    assert templates[0]["external_userid"] == [f"wm{n:04d}" for n in range(1, 1201, 2)]
    assert templates[1]["external_userid"] == [f"wm{n:04d}" for n in range(2, 1201, 2)]
    assert {k: v for k, v in templates[0].items() if k not in ("sender", "external_userid")} == {
        "chat_type": "single",
        "text": {"content": "双十一会员专享礼，点击领取"},
        "attachments": [
            {
                "msgtype": "link",
                "link": {
                    "title": "双十一会员日",
                    "url": "https://siyu.example/s/Camp11",
                    "picurl": "https://cdn.example/cover.jpg",
                },
            }
        ],
    }
    assert sorted(o.delivery_id for o in outcomes) == list(range(1, 1201))
    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}


def test_an_answer_without_a_msgid_fails_without_a_second_task(
    db: Session, clock: FrozenClock, wecom: FakeWecom
) -> None:
    # given WeCom answering a task with a JSON list instead of an object
    account = _account(db, clock, wecom)
    wecom.send_replies = [Reply(200, [])]
    # when two customers of one staff member are sent
    batch = [outgoing(1, "wmA", staff_userid="zs"), outgoing(2, "wmB", staff_userid="zs")]
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then both fail (the task may exist: no retry) after one call
    assert [(o.kind, o.reason) for o in outcomes] == [(OutcomeKind.FAILED, "bad_response")] * 2
    assert len(wecom.templates()) == 1


def test_the_adapter_shares_the_integration_token_store(db: Session, clock: FrozenClock, wecom: FakeWecom) -> None:
    # given the integration's client already holds a token for this corp and secret
    from siyu.integrations.wecom.client import build_client
    from siyu.integrations.wecom.tokens import memory_store

    memory_store().clear()
    client = build_client(CREDENTIALS["corp_id"], CREDENTIALS["secret"], base_url=str(wecom.settings["api_base_url"]))
    assert client.access_token and wecom.tokens_issued == 1
    # when the adapter sends
    account = _account(db, clock, wecom)
    outcomes = adapter_for(account).send(
        context(account, clock, CREDENTIALS), [outgoing(1, "wmA", "你好", staff_userid="zhangsan")]
    )
    # then it used that token instead of fetching another
    assert outcomes == [Outcome(1, OutcomeKind.SENT, provider_message_id=f"{MSGID}:wmA")]
    assert wecom.tokens_issued == 1


def test_the_shared_limiter_holding_a_call_back_is_a_retry(
    db: Session, clock: FrozenClock, wecom: FakeWecom, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given siyu's own limiter allows no add_msg_template call for this corp right now
    from siyu.integrations.wecom import ratelimit
    from siyu.integrations.wecom.errors import WecomRateLimited

    account = _account(db, clock, wecom)

    def refuse(self: ratelimit.RateLimiter, corp_id: str, api: str) -> None:
        if api == "externalcontact/add_msg_template":
            raise WecomRateLimited(api=api, retry_after_s=30)

    monkeypatch.setattr(ratelimit.RateLimiter, "acquire", refuse)
    outcomes = adapter_for(account).send(
        context(account, clock, CREDENTIALS), [outgoing(1, "wmA", "你好", staff_userid="zhangsan")]
    )
    # then the delivery is retried later and WeCom saw no template
    (outcome,) = outcomes
    assert outcome.kind == OutcomeKind.RETRY and wecom.templates() == []
