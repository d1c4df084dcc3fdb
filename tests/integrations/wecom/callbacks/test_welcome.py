"""The welcome fast path: after the answer, within WeCom's 20 seconds, one record per edge."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.integrations.wecom.callbacks import welcome
from siyu.integrations.wecom.callbacks.service import PROCESS_KIND, CallbackAnswer, handle_post
from siyu.integrations.wecom.fake import contacts as fake_contacts
from siyu.integrations.wecom.fake.contacts import simulate_add
from siyu.kit.clock import FrozenClock
from siyu.models import EventStatus, Job, Relationship, WecomIntegration
from tests.integrations.wecom.callbacks.conftest import Wired
from tests.integrations.wecom.callbacks.test_contacts import SEND, _code, _customer, _event, _timeline
from tests.integrations.wecom.helpers import wecom_staff
from tests.integrations.wecom.inbox import drain


def _last_error(db: Session, ws: int) -> str | None:
    db.expire_all()
    return db.scalar(select(WecomIntegration.last_error).where(WecomIntegration.workspace_id == ws))


def test_contact_way_with_its_own_welcome_leaves_no_welcome_row(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="cw")
    _, state = _code(db, wired, clock, staff.id, text="欢迎光临")
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="cw", state=state, welcome=False)
    assert drain(database, clock) == [{"status": "processed", "attempts": 1}]
    customer = _customer(db, wired.setup.workspace.id, added["external_userid"])
    assert _timeline(db, customer, "welcome.") == []
    assert wired.setup.corp.calls_of(SEND) == 0
    assert _event(db, wired.setup.workspace.id).error is None


def test_half_add_with_a_welcome_code_is_welcomed(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="half", name="小半")
    code, state = _code(db, wired, clock, staff.id, text="你好，我是{{ staff_name }}")
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="half", state=state, half=True)
    assert [v["text"] for v in wired.setup.corp.table("welcome_sent").values()] == ["你好，我是小半"]
    drain(database, clock)
    event = _event(db, wired.setup.workspace.id)
    assert (event.change_type, event.status, event.error) == ("add_half_external_contact", EventStatus.PROCESSED, None)
    customer = _customer(db, wired.setup.workspace.id, added["external_userid"])
    [sent] = _timeline(db, customer, "welcome.")
    assert (sent.type, sent.properties["delivery"], sent.properties["live_code_id"]) == (
        "welcome.sent",
        "wecom",
        code.id,
    )
    assert db.scalar(select(Relationship.live_code_id).where(Relationship.customer_id == customer.id)) == code.id


def _capture(wired: Wired, database: Database, clock: FrozenClock, answers: list[CallbackAnswer]) -> None:
    """Pushes go straight to `handle_post`; the answers (with their `after`) are kept, not run."""
    ws = str(wired.setup.workspace.id)

    def transport(params: dict[str, str], body: bytes) -> int:
        answer = handle_post(database, clock, {**params, "ws": ws}, body)
        answers.append(answer)
        return answer.status_code

    wired.setup.corp.transport = transport


def test_slow_wecom_answers_first_and_times_out_the_send(
    db: Session, database: Database, clock: FrozenClock, wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="slow")
    _, state = _code(db, wired, clock, staff.id, text="欢迎")
    monkeypatch.setattr(welcome, "FAST_TIMEOUT_S", 0.3)
    # WeCom answers after 3 s; the send gives up at 0.3 s. The bounds below sit well between the
    # two, so a busy CI machine (seconds of scheduling delay) cannot fail them, yet waiting for
    # the answer would.
    wired.setup.corp.table(fake_contacts.DELAYS)[fake_contacts.SEND_API] = 3.0
    answers: list[CallbackAnswer] = []
    _capture(wired, database, clock, answers)
    started = time.monotonic()
    simulate_add(wired.fake.fake, wired.corp_id, userid="slow", state=state)
    [answer] = answers
    assert (answer.status_code, answer.text) == (200, "success")
    assert time.monotonic() - started < 2.5 and wired.setup.corp.calls_of(SEND) == 0
    queued = select(Job.id).where(Job.workspace_id == wired.setup.workspace.id, Job.kind == PROCESS_KIND)
    assert db.scalar(queued) is None
    assert answer.after is not None
    started = time.monotonic()
    answer.after()
    assert time.monotonic() - started < 2.5
    outcome = _event(db, wired.setup.workspace.id).payload["_welcome"]
    assert (outcome["status"], outcome["errcode"], outcome["error"]) == (
        "failed",
        None,
        "externalcontact/send_welcome_msg: WeCom did not answer in time",
    )
    assert drain(database, clock) == [{"status": "processed", "attempts": 1}]
    wired.setup.corp.table(fake_contacts.DELAYS).clear()


def test_an_add_older_than_the_deadline_is_not_welcomed(
    db: Session, database: Database, clock: FrozenClock, wired: Wired
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="late")
    _, state = _code(db, wired, clock, staff.id, text="欢迎")
    wired.setup.corp.clock = lambda: (clock.now() - timedelta(seconds=16)).timestamp()
    simulate_add(wired.fake.fake, wired.corp_id, userid="late", state=state)
    assert wired.setup.corp.calls_of(SEND) == 0
    outcome = _event(db, wired.setup.workspace.id).payload["_welcome"]
    assert (outcome["status"], outcome["error"]) == ("failed", "welcome code too old: more than 15 s since the add")


def test_41096_another_app_sending_is_retried_once(
    db: Session, database: Database, clock: FrozenClock, wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="busy")
    _, state = _code(db, wired, clock, staff.id, text="欢迎")
    monkeypatch.setattr(welcome, "BUSY_RETRY_AFTER_S", 0.0)
    wired.setup.corp.fail_next(SEND, 41096)
    simulate_add(wired.fake.fake, wired.corp_id, userid="busy", state=state)
    assert wired.setup.corp.calls_of(SEND) == 2
    outcome = _event(db, wired.setup.workspace.id).payload["_welcome"]
    assert (outcome["status"], outcome["attempts"]) == ("sent", 2)
    wired.setup.corp.fail_next(SEND, 41096, times=2)
    simulate_add(wired.fake.fake, wired.corp_id, userid="busy", state=state)
    outcome = _event(db, wired.setup.workspace.id).payload["_welcome"]
    assert (outcome["status"], outcome["errcode"], outcome["attempts"]) == ("failed", 41096, 2)


def test_a_failed_write_back_still_answers_success_and_queues_the_job(
    db: Session, database: Database, clock: FrozenClock, wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = wecom_staff(db, wired.setup, clock=clock, userid="wb")
    _, state = _code(db, wired, clock, staff.id, text="欢迎")
    real: Callable[..., None] = welcome.queue_processing
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("broker down")
        real(*args, **kwargs)

    monkeypatch.setattr(welcome, "queue_processing", flaky)
    added = simulate_add(wired.fake.fake, wired.corp_id, userid="wb", state=state)
    assert added["statuses"] == [200]
    assert _last_error(db, wired.setup.workspace.id) == "welcome outcome not recorded: RuntimeError"
    assert "_welcome" not in _event(db, wired.setup.workspace.id).payload
    assert drain(database, clock) == [{"status": "processed", "attempts": 1}]
