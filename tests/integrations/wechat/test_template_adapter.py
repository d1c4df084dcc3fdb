"""Template messages as a touch channel: send, not-following, finish reports."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wechat.template_adapter import DEFAULT_FIELDS, build, template_data
from siyu.integrations.wecom.fake.official import (
    fail_next,
    simulate_subscribe,
    simulate_template_finish,
)
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters import adapter_for
from siyu.messaging.adapters.base import OutcomeKind, Outgoing, SendContext
from siyu.messaging.reach import Route, route
from siyu.models import (
    AdapterKind,
    ChannelAccount,
    Consent,
    ConsentChannel,
    Delivery,
    DeliveryStatus,
    IdentityType,
    SuppressionReason,
)
from tests.factories import actor_for, make_customer
from tests.integrations.wechat.helpers import OaSetup, oa_workspace, wire
from tests.messaging.factories import make_account

SETTINGS = {"template_id": "TPL-1", "fields": {"thing1": "title", "thing2": "text", "phrase3": "=已到账"}}


def _follower(db: Session, setup: OaSetup, clock: FrozenClock, openid: str) -> int:
    identity = (str(IdentityType.WECHAT_OPENID), f"{setup.config.app_id}:{openid}")
    return make_customer(db, actor=actor_for(setup.workspace), clock=clock, identities=[identity]).customer.id


def _outgoing(delivery_id: int, customer_id: int, address: str | None = None) -> Outgoing:
    return Outgoing(
        delivery_id=delivery_id,
        customer_id=customer_id,
        address=address,
        message={"kind": "link", "title": "会员礼", "text": "双十一礼包", "link": "https://example.com/m"},
    )


def _consent(db: Session, customer_id: int) -> tuple[str, str] | None:
    db.expire_all()
    row = db.execute(
        select(Consent.status, Consent.source).where(
            Consent.customer_id == customer_id, Consent.channel == ConsentChannel.OFFICIAL_ACCOUNT
        )
    ).first()
    return (str(row[0]), str(row[1])) if row else None


def _delivery(db: Session, setup: OaSetup, account: ChannelAccount, customer_id: int, msgid: str) -> Delivery:
    delivery = Delivery(
        workspace_id=setup.workspace.id,
        source="broadcast",
        source_id=1,
        customer_id=customer_id,
        channel_account_id=account.id,
        channel="official_account",
        status=DeliveryStatus.SENT,
        provider_message_id=msgid,
        not_before=setup.account.created_at,
        planned_at=setup.account.created_at,
        sent_at=setup.account.created_at,
    )
    db.add(delivery)
    db.flush()
    return delivery


def test_template_data_maps_fields_and_literals_within_wechat_limits() -> None:
    fields = {"thing1": "title", "phrase2": "=谢谢惠顾啊", "time3": "sent_at"}
    data = template_data(fields, {"title": "你" * 30, "sent_at": "t"})
    assert data == {"thing1": {"value": "你" * 20}, "phrase2": {"value": "谢谢惠顾啊"}, "time3": {"value": "t"}}
    assert "first" not in DEFAULT_FIELDS and "remark" not in DEFAULT_FIELDS


def test_fields_setting_is_validated_json() -> None:
    assert build({"template_id": "T", "fields": '{"thing1": "text"}'}).fields == {"thing1": "text"}
    assert build({"template_id": "T"}).fields == DEFAULT_FIELDS
    for bad in ("{not json", '["thing1"]', '{"thing1": "nickname"}', '{"Bad Key": "text"}'):
        with pytest.raises(InvalidInput) as caught:
            build({"template_id": "T", "fields": bad})
        assert caught.value.details["field"] == "settings.fields"


def test_send_and_report(db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    wire(setup, client)
    account = make_account(
        db, workspace=setup.workspace, clock=clock, kind=AdapterKind.OFFICIAL_ACCOUNT, settings=SETTINGS
    )
    follower = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]
    gone = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]
    a = _follower(db, setup, clock, follower)
    b = _follower(db, setup, clock, gone)
    setup.state["users"][gone]["subscribe"] = 0  # left, and WeChat's unsubscribe push never arrived
    c = make_customer(db, actor=actor_for(setup.workspace), clock=clock).customer.id
    adapter = adapter_for(account)
    context = SendContext(session=db, clock=clock, account=account)

    outcomes = adapter.send(context, [_outgoing(1, a), _outgoing(2, b), _outgoing(3, c)])

    assert [(o.kind, o.reason) for o in outcomes] == [
        (OutcomeKind.SENT, None),
        (OutcomeKind.REJECTED, "not_following"),
        (OutcomeKind.FAILED, "no_openid"),
    ]
    [sent] = setup.state["sent"]
    assert sent["touser"] == follower
    assert sent["url"] == "https://example.com/m"
    assert sent["data"] == {
        "thing1": {"value": "会员礼"},
        "thing2": {"value": "双十一礼包"},
        "phrase3": {"value": "已到账"},
    }
    assert _consent(db, b) == ("unsubscribed", "official_account_43004")
    assert _consent(db, a) == ("granted", "official_account")
    msgid = outcomes[0].provider_message_id
    assert msgid == str(sent["msgid"])

    delivery = _delivery(db, setup, account, a, str(msgid))
    simulate_template_finish(setup.fake, setup.config.app_id, msgid=str(msgid), status="success")
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED


def test_rate_limit_retries_and_bad_template_fails(
    db: Session, clock: FrozenClock, fake_server: RunningFake, database: object
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    follower = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]
    cid = _follower(db, setup, clock, follower)
    account = make_account(
        db, workspace=setup.workspace, clock=clock, kind=AdapterKind.OFFICIAL_ACCOUNT, settings=SETTINGS
    )
    fail_next(setup.fake, setup.config.app_id, "message/template/send", 45009)
    fail_next(setup.fake, setup.config.app_id, "message/template/send", 40037)
    context = SendContext(session=db, clock=clock, account=account)

    outcomes = build(SETTINGS).send(context, [_outgoing(1, cid), _outgoing(2, cid)])

    assert [(o.kind, o.reason) for o in outcomes] == [
        (OutcomeKind.RETRY, "wechat_45009"),
        (OutcomeKind.FAILED, "wechat_40037"),
    ]


def test_finish_reports_user_block_withdraws_and_system_failed_fails(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    wire(setup, client)
    account = make_account(
        db, workspace=setup.workspace, clock=clock, kind=AdapterKind.OFFICIAL_ACCOUNT, settings=SETTINGS
    )
    blocker = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]
    unlucky = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]
    a, b = _follower(db, setup, clock, blocker), _follower(db, setup, clock, unlucky)
    outcomes = build(SETTINGS).send(
        SendContext(session=db, clock=clock, account=account), [_outgoing(1, a), _outgoing(2, b)]
    )
    first, second = (
        _delivery(db, setup, account, c, str(o.provider_message_id)) for c, o in zip((a, b), outcomes, strict=True)
    )

    simulate_template_finish(
        setup.fake, setup.config.app_id, msgid=str(first.provider_message_id), status="failed:user block"
    )
    simulate_template_finish(
        setup.fake, setup.config.app_id, msgid=str(second.provider_message_id), status="failed: system failed"
    )

    db.refresh(first)
    db.refresh(second)
    assert (first.status, second.status) == (DeliveryStatus.FAILED, DeliveryStatus.FAILED)
    assert _consent(db, a) == ("unsubscribed", "official_account_user_block")
    assert _consent(db, b) == ("granted", "official_account")


def test_only_openids_of_the_current_app_are_routed_and_used(
    db: Session, clock: FrozenClock, fake_server: RunningFake, database: object
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    follower = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]
    current = _follower(db, setup, clock, follower)
    old_app = make_customer(
        db,
        actor=actor_for(setup.workspace),
        clock=clock,
        identities=[(str(IdentityType.WECHAT_OPENID), f"wxOLDAPP123:{follower}")],
    ).customer.id
    account = make_account(
        db, workspace=setup.workspace, clock=clock, kind=AdapterKind.OFFICIAL_ACCOUNT, settings=SETTINGS
    )

    routes = route(db, setup.workspace.id, [account], [current, old_app], marketing=True)

    assert routes[current] == Route(account, f"{setup.config.app_id}:{follower}")
    assert routes[old_app] == SuppressionReason.NO_CHANNEL
    # the adapter itself refuses an address of another app (no fallback), with no session of the send's
    context = SendContext(session=None, clock=clock, account=account)  # type: ignore[arg-type]
    outcomes = build(SETTINGS).send(
        context,
        [_outgoing(1, old_app, f"wxOLDAPP123:{follower}"), _outgoing(2, current, f"{setup.config.app_id}:{follower}")],
    )
    assert [(o.kind, o.reason) for o in outcomes] == [(OutcomeKind.FAILED, "no_openid"), (OutcomeKind.SENT, None)]
    assert [s["touser"] for s in setup.state["sent"]] == [follower]
