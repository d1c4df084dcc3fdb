"""Mass-message tasks against the fake WeCom: recording, confirmation, results, expiry, reminders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake import messages as fake_messages
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.messages.service import remind_task, sync_message_tasks
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict
from siyu.messaging.tasks import poll_wecom_results
from siyu.models import AdapterKind, DeliveryStatus, MessageTaskStatus, SuppressionReason, WecomMessageTask
from tests.campaigns.results_factories import make_delivery
from tests.factories import actor_for, make_customer
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace
from tests.messaging.factories import make_account


def _befriend(setup: WecomSetup, external: str, userid: str) -> None:
    setup.corp.contacts[external] = {"external_userid": external, "name": external, "type": 1}
    setup.corp.follows[f"{external}|{userid}"] = {"userid": userid, "createtime": 1700000000, "tags": []}


def _setup(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> WecomSetup:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()  # the fake and siyu agree on the time
    return setup


def _template(setup: WecomSetup, *externals: str, sender: str | None = "lin") -> str:
    data: dict[str, object] = {"external_userid": list(externals)}
    if sender:
        data["sender"] = sender
    return str(client_for(setup.config).call("POST", "externalcontact/add_msg_template", data=data)["msgid"])


def _tasks(db: Session) -> list[WecomMessageTask]:
    return list(db.scalars(select(WecomMessageTask).order_by(WecomMessageTask.sender)))


def test_fake_template_limits_and_fail_list(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    client = client_for(setup.config)
    answer = client.call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA", "wmGone"]}
    )
    assert answer["fail_list"] == ["wmGone"] and answer["msgid"].startswith("msg")
    with pytest.raises(WecomError) as too_many:
        client.call(
            "POST",
            "externalcontact/add_msg_template",
            data={"sender": "lin", "external_userid": [f"wm{i}" for i in range(10_001)]},
        )
    assert too_many.value.code == fake_messages.ERR_LIMIT and not too_many.value.retryable


def test_task_made_in_wecom_is_found_confirmed_and_reconciled(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    for external in ("wmA", "wmB", "wmC"):
        _befriend(setup, external, "lin")
    client = client_for(setup.config)
    earlier = client.call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmC"]}
    )
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=earlier["msgid"], userid="lin")
    msgid = client.call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA", "wmB", "wmC"]}
    )["msgid"]

    first = sync_message_tasks(database, setup.config, clock)
    assert first["new"] == 2 and first["confirmed"] == 1  # the earlier task was already sent
    task = next(t for t in _tasks(db) if t.msgid == msgid)
    assert task.status == MessageTaskStatus.WAITING

    del setup.corp.follows["wmB|lin"]  # wmB deleted lin before the task went out
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=msgid, userid="lin")
    second = sync_message_tasks(database, setup.config, clock)
    db.refresh(task)
    assert second["confirmed"] == 1 and second["done"] == 1
    assert task.status == MessageTaskStatus.DONE
    assert task.counts == {"pending": 0, "delivered": 1, "not_friend": 1, "platform_capped": 1}
    assert task.recipients == 3 and task.checked_at == clock.now()


def test_siyu_send_records_task_and_updates_deliveries(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    staff = wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    _befriend(setup, "wmB", "lin")
    msgid = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA", "wmB"]}
    )["msgid"]
    actor = actor_for(setup.workspace)
    deliveries = {}
    for external in ("wmA", "wmB"):
        customer = make_customer(db, actor=actor, clock=clock).customer
        deliveries[external] = make_delivery(
            db,
            workspace_id=setup.workspace.id,
            source_id=1,
            customer_id=customer.id,
            status=DeliveryStatus.SENT,
            planned_at=clock.now(),
            channel=AdapterKind.WECOM_CUSTOMER,
            staff_id=staff.id,
            address=external,
            provider_message_id=f"{msgid}:{external}",
            sent_at=clock.now(),
        )
    # A second siyu send of the same day makes wmB capped
    other = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmB"]}
    )["msgid"]
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=other, userid="lin")
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=msgid, userid="lin")

    sync_message_tasks(database, setup.config, clock)
    task = next(t for t in _tasks(db) if t.msgid == msgid)
    assert task.recipients == 2 and task.status == MessageTaskStatus.DONE
    assert task.broadcast_id is None  # source_id 1 names no broadcast: the reference is left out
    db.refresh(deliveries["wmA"])
    db.refresh(deliveries["wmB"])
    assert deliveries["wmA"].status == DeliveryStatus.DELIVERED and deliveries["wmA"].delivered_at is not None
    assert deliveries["wmB"].status == DeliveryStatus.SUPPRESSED
    assert deliveries["wmB"].reason == SuppressionReason.PLATFORM_CAPPED


def test_reminders_then_expiry(db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA"]}
    )["msgid"]
    assert sync_message_tasks(database, setup.config, clock)["reminded"] == 0  # too early
    reminded = []
    for _ in range(4):
        clock.advance(timedelta(hours=7))
        reminded.append(sync_message_tasks(database, setup.config, clock)["reminded"])
    (task,) = _tasks(db)
    assert reminded == [1, 1, 1, 0] and task.remind_count == 3
    assert len(setup.corp.table("msg_tasks")[msgid]["reminds"]) == 3
    with pytest.raises(Conflict):
        remind_task(database, setup.config, task.id, clock)
    clock.advance(timedelta(days=3))
    assert sync_message_tasks(database, setup.config, clock)["expired"] == 1
    db.refresh(task)
    assert task.status == MessageTaskStatus.EXPIRED


def test_remind_now_and_wecom_refusal_is_recorded(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA"]}
    )
    sync_message_tasks(database, setup.config, clock)
    (task,) = _tasks(db)
    assert remind_task(database, setup.config, task.id, clock).remind_count == 1
    setup.corp.fail_next("externalcontact/remind_groupmsg_send", 41063)
    with pytest.raises(Conflict):
        remind_task(database, setup.config, task.id, clock)
    db.refresh(setup.integration)
    db.refresh(task)
    assert task.remind_count == 1 and task.error is not None and "41063" in task.error
    assert setup.integration.last_error is not None and "remind_groupmsg_send" in setup.integration.last_error


def test_remind_now_calls_wecom_with_no_transaction_open(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is committed before `remind_groupmsg_send`; the answer is written afterwards."""
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    _template(setup, "wmA")
    sync_message_tasks(database, setup.config, clock)
    (task,) = _tasks(db)
    open_transactions = [0]
    seen: list[tuple[int, int]] = []
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
        if api == "externalcontact/remind_groupmsg_send":
            depth = open_transactions[0]
            with transaction(read_only=True) as session:
                claimed = session.scalar(select(WecomMessageTask.remind_count).where(WecomMessageTask.id == task.id))
            seen.append((depth, int(claimed or 0)))
        return call(self, method, api, **kwargs)

    monkeypatch.setattr(database, "transaction", counted)
    monkeypatch.setattr(WecomClient, "call", watched)
    assert remind_task(database, setup.config, task.id, clock).remind_count == 1
    setup.corp.fail_next("externalcontact/remind_groupmsg_send", 41063)
    with pytest.raises(Conflict):
        remind_task(database, setup.config, task.id, clock)
    assert seen == [(0, 1), (0, 2)]  # no transaction open, the claim already written
    db.refresh(task)
    assert task.remind_count == 1 and task.error is not None and "41063" in task.error


def test_retryable_error_leaves_task_for_next_run(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA"]}
    )["msgid"]
    sync_message_tasks(database, setup.config, clock)
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=msgid, userid="lin")
    setup.corp.fail_next("externalcontact/get_groupmsg_task", -1)
    busy = sync_message_tasks(database, setup.config, clock)
    (task,) = _tasks(db)
    assert busy["errors"] == 1 and task.status == MessageTaskStatus.WAITING and task.error is None
    assert sync_message_tasks(database, setup.config, clock)["done"] == 1


def test_confirm_sim_over_http(db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake) -> None:
    import requests

    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA"]}
    )["msgid"]
    url = fake_wecom.url.rstrip("/") + "/sim/messages/confirm"
    wrong = requests.post(url, json={"corp_id": setup.corp.corp_id, "msgid": msgid, "userid": "zoe"}, timeout=5)
    assert wrong.status_code == 400 and wrong.json()["errcode"] == 41063
    sent = requests.post(url, json={"corp_id": setup.corp.corp_id, "msgid": msgid, "userid": "lin"}, timeout=5)
    assert sent.json() == {"msgid": msgid, "sent": 1, "not_friend": 0, "capped": 0}


def test_one_reminder_per_msgid_for_all_its_senders(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    wecom_staff(db, setup, clock=clock, userid="zoe")
    _befriend(setup, "wmA", "lin")
    _befriend(setup, "wmB", "zoe")
    msgid = _template(setup, "wmA", "wmB", sender=None)  # WeCom splits it: one task per owner
    sync_message_tasks(database, setup.config, clock)
    assert [(t.msgid, t.sender) for t in _tasks(db)] == [(msgid, "lin"), (msgid, "zoe")]
    clock.advance(timedelta(hours=7))
    assert sync_message_tasks(database, setup.config, clock)["reminded"] == 1
    assert setup.corp.calls_of("externalcontact/remind_groupmsg_send") == 1
    lin, zoe = _tasks(db)
    for task in (lin, zoe):
        db.refresh(task)
    assert (lin.remind_count, zoe.remind_count) == (1, 1) and lin.reminded_at == zoe.reminded_at == clock.now()
    remind_task(database, setup.config, zoe.id, clock)  # "remind now" on one row reminds the msgid
    db.refresh(lin)
    assert lin.remind_count == 2 and len(setup.corp.table("msg_tasks")[msgid]["reminds"]) == 2


def test_fake_limits_reminders_per_msgid_in_24_hours(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = _template(setup, "wmA")
    client = client_for(setup.config)
    for _ in range(3):
        client.call("POST", "externalcontact/remind_groupmsg_send", data={"msgid": msgid})
    with pytest.raises(WecomError) as fourth:
        client.call("POST", "externalcontact/remind_groupmsg_send", data={"msgid": msgid})
    assert fourth.value.code == fake_messages.ERR_LIMIT
    clock.advance(timedelta(hours=24))
    client.call("POST", "externalcontact/remind_groupmsg_send", data={"msgid": msgid})


def test_empty_send_list_is_not_done_before_the_window(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = _template(setup, "wmA")
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=msgid, userid="lin")
    setup.corp.table("msg_tasks")[msgid]["results"]["lin"] = {}  # WeCom has no per-customer rows yet
    first = sync_message_tasks(database, setup.config, clock)
    (task,) = _tasks(db)
    assert first["confirmed"] == 1 and first["done"] == 0 and task.status == MessageTaskStatus.SENT
    clock.advance(timedelta(days=7))
    assert sync_message_tasks(database, setup.config, clock)["done"] == 1


def test_remind_error_is_cleared_when_the_task_moves_on(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = _template(setup, "wmA")
    sync_message_tasks(database, setup.config, clock)
    setup.corp.fail_next("externalcontact/remind_groupmsg_send", 41063)
    clock.advance(timedelta(hours=7))
    assert sync_message_tasks(database, setup.config, clock)["reminded"] == 0
    (task,) = _tasks(db)
    db.refresh(task)
    assert task.remind_count == 0 and task.error is not None and "41063" in task.error  # the claim given back
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=msgid, userid="lin")
    sync_message_tasks(database, setup.config, clock)
    db.refresh(task)
    assert task.status == MessageTaskStatus.DONE and task.error is None


def test_discovered_task_gets_its_channel_account_later(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    staff = wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = _template(setup, "wmA")
    sync_message_tasks(database, setup.config, clock)  # found through get_groupmsg_list_v2 only
    (task,) = _tasks(db)
    assert task.channel_account_id is None
    account = make_account(db, workspace=setup.workspace, clock=clock, kind=AdapterKind.WECOM_CUSTOMER)
    customer = make_customer(db, actor=actor_for(setup.workspace), clock=clock).customer
    make_delivery(
        db,
        workspace_id=setup.workspace.id,
        source_id=1,
        customer_id=customer.id,
        status=DeliveryStatus.SENT,
        planned_at=clock.now(),
        channel=AdapterKind.WECOM_CUSTOMER,
        staff_id=staff.id,
        address="wmA",
        provider_message_id=f"{msgid}:wmA",
        sent_at=clock.now(),
        channel_account_id=account.id,
    )
    sync_message_tasks(database, setup.config, clock)
    db.refresh(task)
    assert task.channel_account_id == account.id and task.recipients == 1
    assert setup.corp.calls_of("externalcontact/get_groupmsg_task") == 2  # once per run, not per row


def test_old_poll_leaves_workspaces_with_the_integration_alone(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    staff = wecom_staff(db, setup, clock=clock, userid="lin")
    _befriend(setup, "wmA", "lin")
    msgid = _template(setup, "wmA")
    fake_messages.confirm(fake_wecom.fake, setup.corp.corp_id, msgid=msgid, userid="lin")
    account = make_account(
        db,
        workspace=setup.workspace,
        clock=clock,
        kind=AdapterKind.WECOM_CUSTOMER,
        settings={"api_base_url": fake_wecom.api_base_url},
        credentials={"corp_id": setup.corp.corp_id, "secret": setup.corp.contact_secret},
    )
    customer = make_customer(db, actor=actor_for(setup.workspace), clock=clock).customer
    delivery = make_delivery(
        db,
        workspace_id=setup.workspace.id,
        source_id=1,
        customer_id=customer.id,
        status=DeliveryStatus.SENT,
        planned_at=clock.now(),
        channel=AdapterKind.WECOM_CUSTOMER,
        staff_id=staff.id,
        address="wmA",
        provider_message_id=f"{msgid}:wmA",
        sent_at=clock.now(),
        channel_account_id=account.id,
    )
    assert poll_wecom_results(database, clock)["checked"] == 0
    assert setup.corp.calls_of("externalcontact/get_groupmsg_send_result") == 0
    setup.integration.is_active = False
    db.flush()
    assert poll_wecom_results(database, clock)["checked"] == 1
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED
