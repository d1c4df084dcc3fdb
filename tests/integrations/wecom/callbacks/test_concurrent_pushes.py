"""Two identical pushes arriving at the same instant (WeCom retrying while the first is in flight)."""

from __future__ import annotations

from sqlalchemy import select

from siyu.db import Database
from siyu.integrations.wecom.callbacks.service import PROCESS_KIND, CallbackAnswer, handle_post
from siyu.integrations.wecom.fake.contacts import simulate_add
from siyu.integrations.wecom.fake.push import encrypt_for, event_xml
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.livecodes.state import encode_state
from siyu.models import IntegrationEvent, Job
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`
from tests.factories import make_channel, make_live_code
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace


def test_concurrent_identical_pushes_are_stored_once(
    database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    with database.transaction() as session:
        setup = wecom_workspace(session, clock=clock, fake=fake_wecom)
        workspace_id = setup.workspace.id
    xml = event_xml(
        {
            "ToUserName": setup.corp.corp_id,
            "CreateTime": 1700000000,
            "Event": "change_external_contact",
            "ChangeType": "del_follow_user",
            "UserID": "u1",
            "ExternalUserID": "wm1",
        }
    )
    params, body = encrypt_for(setup.corp, xml)
    query = {**params, "ws": str(workspace_id)}

    def push() -> CallbackAnswer:
        return handle_post(database, clock, query, body)

    assert outcome_names([push, push]) == [CallbackAnswer(200, "success")] * 2
    with database.transaction(read_only=True) as session:
        events = list(session.scalars(select(IntegrationEvent).where(IntegrationEvent.workspace_id == workspace_id)))
        assert [(e.change_type, e.duplicates) for e in events] == [("del_follow_user", 1)]
        jobs = list(session.scalars(select(Job).where(Job.workspace_id == workspace_id, Job.kind == PROCESS_KIND)))
        assert [j.args for j in jobs] == [{"event_id": events[0].id}]


def test_concurrent_identical_adds_send_one_welcome(
    database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    with database.transaction() as session:
        setup = wecom_workspace(session, clock=clock, fake=fake_wecom)
        setup.corp.clock = lambda: clock.now().timestamp()
        workspace_id = setup.workspace.id
        staff = wecom_staff(session, setup, clock=clock, userid="twin")
        channel = make_channel(session, workspace=setup.workspace, clock=clock)
        code = make_live_code(
            session,
            workspace=setup.workspace,
            clock=clock,
            channel_id=channel.id,
            routes=[{"staff_id": staff.id}],
            welcome={"text": "欢迎"},
        )
        state = encode_state(code.id, channel.id)
    added = simulate_add(fake_wecom.fake, setup.corp.corp_id, userid="twin", state=state)  # recorded, not sent
    params, body = encrypt_for(setup.corp, event_xml(setup.corp.pushed[-1]["fields"]))
    query = {**params, "ws": str(workspace_id)}
    answers: list[CallbackAnswer] = []

    def push() -> None:
        answers.append(handle_post(database, clock, query, body))

    assert outcome_names([push, push]) == [None, None]
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 2
    for answer in answers:
        if answer.after is not None:
            answer.after()
    assert setup.corp.calls_of("externalcontact/send_welcome_msg") == 1
    assert [v["external_userid"] for v in setup.corp.table("welcome_sent").values()] == [added["external_userid"]]
    with database.transaction(read_only=True) as session:
        [event] = session.scalars(select(IntegrationEvent).where(IntegrationEvent.workspace_id == workspace_id))
        assert (event.duplicates, event.payload["_welcome"]["status"]) == (1, "sent")
        jobs = list(session.scalars(select(Job).where(Job.workspace_id == workspace_id, Job.kind == PROCESS_KIND)))
        assert [j.args for j in jobs] == [{"event_id": event.id}]
