"""Customer-contact events end to end: the fake pushes, the app stores, the job updates the pool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.integrations.wecom.callbacks.tasks import sweep
from siyu.integrations.wecom.fake import contacts as fake_contacts
from siyu.integrations.wecom.fake.contacts import (
    simulate_add,
    simulate_customer_deletes,
    simulate_edit,
    simulate_staff_deletes,
)
from siyu.integrations.wecom.fake.push import push_event
from siyu.kit.clock import FrozenClock
from siyu.livecodes.state import encode_state
from siyu.models import (
    Customer,
    CustomerEvent,
    CustomerTag,
    EventStatus,
    Identity,
    IdentityType,
    IntegrationEvent,
    LiveCode,
    Relationship,
    RemovedBy,
    TagSource,
    TransferKind,
    TransferStatus,
    WecomIntegration,
    WecomTransfer,
)
from tests.factories import make_channel, make_live_code, make_tag
from tests.integrations.wecom.callbacks.conftest import Wired
from tests.integrations.wecom.helpers import wecom_staff
from tests.integrations.wecom.inbox import drain

SEND = "externalcontact/send_welcome_msg"


def _code(
    db: Session, wired: Wired, clock: FrozenClock, staff_id: int, text: str = "{{ name }}你好，我是{{ staff_name }}"
) -> tuple[LiveCode, str]:
    ws = wired.setup.workspace
    channel = make_channel(db, workspace=ws, clock=clock, name="包裹卡")
    code = make_live_code(
        db, workspace=ws, clock=clock, channel_id=channel.id, routes=[{"staff_id": staff_id}], welcome={"text": text}
    )
    db.commit()
    return code, encode_state(code.id, channel.id)


def _customer(db: Session, ws: int, external_userid: str) -> Customer:
    db.expire_all()
    customer = db.scalar(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(
            Identity.workspace_id == ws,
            Identity.type == str(IdentityType.WECOM_EXTERNAL_USERID),
            Identity.value == external_userid,
        )
    )
    assert customer is not None
    return customer


def _timeline(db: Session, customer: Customer, prefix: str) -> list[CustomerEvent]:
    return list(
        db.scalars(
            select(CustomerEvent)
            .where(CustomerEvent.customer_id == customer.id, CustomerEvent.type.startswith(prefix))
            .order_by(CustomerEvent.id)
        )
    )


def _event(db: Session, ws: int) -> IntegrationEvent:
    db.expire_all()
    event = db.scalar(
        select(IntegrationEvent).where(IntegrationEvent.workspace_id == ws).order_by(IntegrationEvent.id.desc())
    )
    assert event is not None
    return event


def _pushed_at(wired: Wired) -> datetime:
    return datetime.fromtimestamp(int(wired.setup.corp.pushed[-1]["fields"]["CreateTime"]), tz=UTC)


def _same(a: datetime | None, b: datetime) -> bool:
    assert a is not None
    return a.replace(tzinfo=None) == b.replace(tzinfo=None)


def test_scan_add_is_attributed_welcomed_by_wecom_once(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="zhang", name="小张")
    code, state = _code(db, wired, clock, staff.id)
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="zhang", state=state, name="王女士", times=2)
    assert added["statuses"] == [200, 200]
    # The welcome went out inside the request, once, although WeCom pushed twice.
    sent = wired.setup.corp.table("welcome_sent")
    assert [(v["external_userid"], v["text"]) for v in sent.values()] == [
        (added["external_userid"], "王女士你好，我是小张")
    ]
    assert drain(database, clock) == [{"status": "processed", "attempts": 1}]
    customer = _customer(db, wired.setup.workspace.id, added["external_userid"])
    assert customer.name == "王女士"
    edge = db.scalar(select(Relationship).where(Relationship.customer_id == customer.id))
    assert edge is not None and (edge.staff_id, edge.live_code_id, edge.live_code_state) == (staff.id, code.id, state)
    assert _same(edge.added_at, _pushed_at(wired))
    [welcome] = _timeline(db, customer, "welcome.")
    assert (welcome.type, welcome.properties["delivery"], welcome.properties["text"]) == (
        "welcome.sent",
        "wecom",
        "王女士你好，我是小张",
    )
    assert _event(db, wired.setup.workspace.id).error is None
    # A late third retry after processing changes nothing.
    assert drain(database, clock) == []


def test_welcome_already_sent_41051_is_recorded(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="li")
    _, state = _code(db, wired, clock, staff.id, text="欢迎")
    wired.setup.corp.fail_next(SEND, 41051)
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="li", state=state)
    drain(database, clock)
    customer = _customer(db, wired.setup.workspace.id, added["external_userid"])
    [failed] = _timeline(db, customer, "welcome.")
    assert (failed.type, failed.properties["delivery"], failed.properties["errcode"]) == (
        "welcome.failed",
        "wecom",
        41051,
    )
    event = _event(db, wired.setup.workspace.id)
    assert (event.status, event.error) == (EventStatus.PROCESSED, "welcome failed: errcode 41051")
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == wired.setup.workspace.id))
    assert integration is not None
    assert integration.last_error == (
        "welcome message failed (errcode 41051): externalcontact/send_welcome_msg: scripted failure"
        " (客户已开始聊天或欢迎语已发送)"
    )


def test_expired_welcome_code_is_refused_as_invalid(
    db: Session, database: Database, clock: FrozenClock, wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="wu")
    _, state = _code(db, wired, clock, staff.id, text="欢迎")
    monkeypatch.setattr(fake_contacts, "WELCOME_TTL_S", -1)
    simulate_add(wired.fake.fake, wired.corp_id, userid="wu", state=state)
    outcome = _event(db, wired.setup.workspace.id).payload["_welcome"]
    assert (outcome["status"], outcome["errcode"], outcome["attempts"]) == ("failed", 40058, 1)
    assert wired.setup.corp.table("welcome_sent") == {}


def test_expired_access_token_mid_flow_is_refreshed(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="zhao")
    _, state = _code(db, wired, clock, staff.id, text="欢迎")
    simulate_add(wired.fake.fake, wired.corp_id, userid="zhao", state=state)
    assert wired.setup.corp.calls_of("gettoken") == 1
    wired.setup.corp.expire_tokens()
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="zhao", state=state)
    assert wired.setup.corp.calls_of("gettoken") == 2
    assert len(wired.setup.corp.table("welcome_sent")) == 2
    wired.setup.corp.expire_tokens()
    assert [r["status"] for r in drain(database, clock)] == ["processed", "processed"]
    assert _customer(db, wired.setup.workspace.id, added["external_userid"]).name == "微信用户"


def test_add_without_siyu_state_has_no_welcome_and_keeps_unionid(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    wecom_staff(db, wired.setup, clock=clock, userid="qian")
    db.commit()
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="qian", state="notsiyu", unionid="oUNION1")
    assert wired.setup.corp.calls_of(SEND) == 0
    drain(database, clock)
    customer = _customer(db, wired.setup.workspace.id, added["external_userid"])
    unionids = db.scalars(
        select(Identity.value).where(
            Identity.customer_id == customer.id, Identity.type == str(IdentityType.WECHAT_UNIONID)
        )
    )
    assert list(unionids) == ["oUNION1"]
    assert _timeline(db, customer, "welcome.") == []


def test_unknown_staff_is_a_note_not_a_failure(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    wired.setup.corp.users["ghost"] = {"userid": "ghost", "name": "x", "department": [1], "status": 1}
    simulate_add(wired.fake.fake, wired.corp_id, userid="ghost")
    drain(database, clock)
    event = _event(db, wired.setup.workspace.id)
    assert (event.status, event.error) == (EventStatus.PROCESSED, "unknown staff ghost")


@pytest.mark.parametrize(("who", "removed_by"), [("customer", RemovedBy.CUSTOMER), ("staff", RemovedBy.STAFF)])
def test_deletions_close_the_edge_with_who_removed_whom(
    db: Session, database: Database, clock: FrozenClock, wired: Wired, who: str, removed_by: RemovedBy
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="sun")
    db.commit()
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="sun")
    drain(database, clock)
    delete = simulate_customer_deletes if who == "customer" else simulate_staff_deletes
    delete(wired.fake.fake, wired.corp_id, userid="sun", external_userid=added["external_userid"])
    assert drain(database, clock) == [{"status": "processed", "attempts": 1}]
    customer = _customer(db, wired.setup.workspace.id, added["external_userid"])
    edge = db.scalar(
        select(Relationship).where(Relationship.customer_id == customer.id, Relationship.staff_id == staff.id)
    )
    assert edge is not None and edge.removed_by == removed_by
    assert _same(edge.removed_at, _pushed_at(wired))
    assert [e.properties["removed_by"] for e in _timeline(db, customer, "relationship.removed")] == [str(removed_by)]


def test_edit_refreshes_name_and_unionid(db: Session, database: Database, clock: FrozenClock, wired: Wired) -> None:
    wecom_staff(db, wired.setup, clock=clock, userid="zhou")
    db.commit()
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="zhou", name="旧名")
    drain(database, clock)
    simulate_edit(
        wired.fake.fake,
        wired.corp_id,
        userid="zhou",
        external_userid=added["external_userid"],
        name="新名",
        unionid="oU2",
    )
    drain(database, clock)
    customer = _customer(db, wired.setup.workspace.id, added["external_userid"])
    assert customer.name == "新名"
    assert (
        db.scalar(
            select(Identity.customer_id).where(
                Identity.type == str(IdentityType.WECHAT_UNIONID), Identity.value == "oU2"
            )
        )
        == customer.id
    )
    assert _event(db, wired.setup.workspace.id).status == EventStatus.PROCESSED


@pytest.mark.parametrize("userid", ["old", "new"])
def test_transfer_fail_marks_the_pending_transfer(
    db: Session, database: Database, clock: FrozenClock, wired: Wired, userid: str
) -> None:
    old = wecom_staff(db, wired.setup, clock=clock, userid="old")
    new = wecom_staff(db, wired.setup, clock=clock, userid="new")
    other = wecom_staff(db, wired.setup, clock=clock, userid="other")

    def transfer(handover: int, status: TransferStatus) -> WecomTransfer:
        row = WecomTransfer(
            workspace_id=wired.setup.workspace.id,
            kind=TransferKind.ON_JOB,
            handover_staff_id=handover,
            takeover_staff_id=new.id,
            external_id="wmT1",
            status=status,
            submitted_at=clock.now() - timedelta(hours=1),
        )
        db.add(row)
        return row

    pending = transfer(old.id, TransferStatus.WAITING)
    done = transfer(old.id, TransferStatus.SUCCEEDED)
    unrelated = transfer(other.id, TransferStatus.SUBMITTED)
    unrelated.takeover_staff_id = other.id
    db.commit()
    fields = {
        "Event": "change_external_contact",
        "ChangeType": "transfer_fail",
        "FailReason": "customer_refused",
        "UserID": userid,
        "ExternalUserID": "wmT1",
    }
    push_event(wired.setup.corp, fields)
    drain(database, clock)
    db.expire_all()
    assert (pending.status, pending.error, pending.checked_at) == (
        TransferStatus.FAILED,
        "customer_refused",
        clock.now(),
    )
    assert (done.status, unrelated.status) == (TransferStatus.SUCCEEDED, TransferStatus.SUBMITTED)
    push_event(wired.setup.corp, {**fields, "ExternalUserID": "wmNone"})
    drain(database, clock)
    assert _event(db, wired.setup.workspace.id).error == "no pending transfer of wmNone"


def test_sweep_retries_a_failed_event(db: Session, database: Database, clock: FrozenClock, wired: Wired) -> None:
    wecom_staff(db, wired.setup, clock=clock, userid="wang")
    db.commit()
    wired.setup.corp.fail_next("externalcontact/get", -1)
    simulate_add(wired.fake.fake, wired.corp_id, userid="wang")
    assert drain(database, clock) == [{"status": "failed", "attempts": 1}]
    event = _event(db, wired.setup.workspace.id)
    assert event.status == EventStatus.FAILED and "系统繁忙" in (event.error or "")
    assert sweep(database, clock) == {"retried": 1, "processed": 1, "failed": 0}
    assert (_event(db, wired.setup.workspace.id).status, _event(db, wired.setup.workspace.id).attempts) == (
        EventStatus.PROCESSED,
        2,
    )
    assert sweep(database, clock)["retried"] == 0


def test_sweep_leaves_non_retryable_failures_alone(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    wecom_staff(db, wired.setup, clock=clock, userid="feng")
    db.commit()
    wired.setup.corp.fail_next("externalcontact/get", 40058)
    simulate_add(wired.fake.fake, wired.corp_id, userid="feng")
    assert drain(database, clock) == [{"status": "failed", "attempts": 1}]
    event = _event(db, wired.setup.workspace.id)
    assert (event.status, event.payload["_retryable"]) == (EventStatus.FAILED, False)
    assert sweep(database, clock)["retried"] == 0


def test_not_configured_counts_an_attempt_and_waits_for_an_active_integration(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    wecom_staff(db, wired.setup, clock=clock, userid="chen")
    db.commit()
    simulate_add(wired.fake.fake, wired.corp_id, userid="chen")
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == wired.setup.workspace.id))
    assert integration is not None
    integration.is_active = False
    db.commit()
    assert drain(database, clock) == [{"skipped": "not configured", "attempts": 1}]
    event = _event(db, wired.setup.workspace.id)
    assert (event.status, event.error, event.attempts) == (EventStatus.FAILED, "WeCom not configured", 1)
    assert sweep(database, clock)["retried"] == 0
    integration.is_active = True
    db.commit()
    assert sweep(database, clock) == {"retried": 1, "processed": 1, "failed": 0}
    assert (_event(db, wired.setup.workspace.id).status, _event(db, wired.setup.workspace.id).attempts) == (
        EventStatus.PROCESSED,
        2,
    )


def test_delete_by_transfer_closes_the_edge_as_transferred_once(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="tr")
    db.commit()
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="tr")
    drain(database, clock)
    external_userid = added["external_userid"]
    simulate_staff_deletes(
        wired.fake.fake, wired.corp_id, userid="tr", external_userid=external_userid, source="DELETE_BY_TRANSFER"
    )
    drain(database, clock)
    assert _event(db, wired.setup.workspace.id).error == "deleted by transfer"
    customer = _customer(db, wired.setup.workspace.id, external_userid)
    edge = db.scalar(
        select(Relationship).where(Relationship.customer_id == customer.id, Relationship.staff_id == staff.id)
    )
    assert edge is not None and edge.removed_by == RemovedBy.TRANSFERRED
    push_event(
        wired.setup.corp,
        {
            "Event": "change_external_contact",
            "ChangeType": "del_external_contact",
            "UserID": "tr",
            "ExternalUserID": external_userid,
            "Source": "DELETE_BY_TRANSFER",
            "Note": "again",
        },
    )
    drain(database, clock)
    assert _event(db, wired.setup.workspace.id).error == "deleted by transfer; no open relationship"
    assert [e.properties["removed_by"] for e in _timeline(db, customer, "relationship.removed")] == ["transferred"]


def test_add_processed_after_the_delete_opens_no_edge(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    wecom_staff(db, wired.setup, clock=clock, userid="late")
    keep = wecom_staff(db, wired.setup, clock=clock, userid="keep")
    db.commit()
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="late")
    simulate_customer_deletes(wired.fake.fake, wired.corp_id, userid="late", external_userid=added["external_userid"])
    assert [r["status"] for r in drain(database, clock)] == ["processed", "processed"]
    ws = wired.setup.workspace.id
    events = list(
        db.scalars(select(IntegrationEvent).where(IntegrationEvent.workspace_id == ws).order_by(IntegrationEvent.id))
    )
    assert [e.error for e in events] == [
        "contact gone in WeCom; add not recorded",
        f"unknown customer {added['external_userid']}",
    ]
    assert db.scalar(select(Relationship.id).where(Relationship.workspace_id == ws)) is None
    # Another member still follows the contact, but not this one: no edge either.
    again = simulate_add(wired.fake.fake, wired.corp_id, userid="late")
    simulate_add(wired.fake.fake, wired.corp_id, userid="keep", external_userid=again["external_userid"])
    simulate_customer_deletes(wired.fake.fake, wired.corp_id, userid="late", external_userid=again["external_userid"])
    drain(database, clock)
    events = list(
        db.scalars(select(IntegrationEvent).where(IntegrationEvent.workspace_id == ws).order_by(IntegrationEvent.id))
    )
    assert events[2].error == "late no longer follows the contact in WeCom; add not recorded"
    edges = db.scalars(select(Relationship).where(Relationship.workspace_id == ws))
    assert [(e.staff_id, e.removed_at) for e in edges] == [(keep.id, None)]


def test_add_pages_follows_and_keeps_remark_and_tags(
    db: Session, database: Database, clock: FrozenClock, wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="page2")
    tag = make_tag(db, workspace=wired.setup.workspace, name="高意向")
    tag.wecom_tag_id = "etHIGH"
    db.commit()
    monkeypatch.setattr(fake_contacts, "FOLLOW_PAGE", 1)
    first = simulate_add(wired.fake.fake, wired.corp_id, userid="page2", welcome=False)
    # Someone else follows the same contact first: our follow is on the second page.
    wired.setup.corp.follows = {
        f"{first['external_userid']}|other": {"userid": "other", "remark": "", "tags": []},
        **wired.setup.corp.follows,
    }
    wired.setup.corp.follows[f"{first['external_userid']}|page2"].update(
        remark="老客户", tags=[{"group_name": "", "tag_name": "", "tag_id": "etHIGH", "type": 1}]
    )
    drain(database, clock)
    assert wired.setup.corp.calls_of("externalcontact/get") == 2
    customer = _customer(db, wired.setup.workspace.id, first["external_userid"])
    edge = db.scalar(select(Relationship).where(Relationship.customer_id == customer.id))
    assert edge is not None and (edge.staff_id, edge.wecom_remark) == (staff.id, "老客户")
    tags = db.execute(select(CustomerTag.tag_id, CustomerTag.source).where(CustomerTag.customer_id == customer.id))
    assert [tuple(t) for t in tags] == [(tag.id, TagSource.WECOM)]
    simulate_edit(
        wired.fake.fake, wired.corp_id, userid="page2", external_userid=first["external_userid"], remark="VIP"
    )
    drain(database, clock)
    db.expire_all()
    assert edge.wecom_remark == "VIP"
