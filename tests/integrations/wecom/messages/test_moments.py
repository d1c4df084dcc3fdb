"""Calendar moment posts published through WeCom's add_moment_task, with their stats."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.calendars.moments import publish_post
from siyu.db import Database
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.moments import sim_like, sim_publish
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.messages.moments import MAX_RESULT_ERRORS, sync_moments
from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, ContentItem, MomentPost, Persona, WecomMomentTask
from tests.campaigns.calendars.factories import make_moment, make_persona
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace
from tests.messaging.factories import make_content


def _post(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, userid: str = "lin"
) -> tuple[WecomSetup, MomentPost]:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    staff = wecom_staff(db, setup, clock=clock, userid=userid)
    persona = make_persona(db, workspace=setup.workspace, clock=clock, staff=staff)
    item = make_content(db, workspace=setup.workspace, clock=clock, body="早安，今天的精华水到货啦")
    post = make_moment(
        db,
        workspace=setup.workspace,
        clock=clock,
        persona=persona,
        content=item,
        on=clock.now().date(),
        is_marketing=False,
    )
    assert publish_post(db, post.id, clock) == "published"
    return setup, post


def test_published_post_becomes_a_wecom_moment_with_stats(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup, post = _post(db, clock, fake_wecom)
    task = db.scalar(select(WecomMomentTask).where(WecomMomentTask.moment_post_id == post.id))
    assert task is not None and task.status == "creating" and task.jobid is None
    assert task.request["visible_range"] == {"sender_list": {"user_list": ["lin"]}}
    assert "早安" in task.request["text"]["content"]

    first = sync_moments(database, setup.config, clock)  # submitted; WeCom's job still running
    db.refresh(task)
    assert first["submitted"] == 1 and task.status == "creating" and task.jobid
    second = sync_moments(database, setup.config, clock)
    db.refresh(task)
    assert second["created"] == 1 and task.status == "created" and task.moment_id and task.request == {}
    assert task.stats == {"publishers": 0, "not_published": 1, "likes": 0, "comments": 0}

    corp_id = setup.corp.corp_id
    sim_publish(fake_wecom.fake, {"corp_id": corp_id, "moment_id": task.moment_id, "userid": "lin"})
    sim_like(
        fake_wecom.fake, {"corp_id": corp_id, "moment_id": task.moment_id, "userid": "lin", "external_userid": "wmA"}
    )
    sim_like(
        fake_wecom.fake, {"corp_id": corp_id, "moment_id": task.moment_id, "userid": "lin", "external_userid": "wmB"}
    )
    sim_like(
        fake_wecom.fake,
        {"corp_id": corp_id, "moment_id": task.moment_id, "userid": "lin", "external_userid": "wmA", "comment": True},
    )
    sync_moments(database, setup.config, clock)
    db.refresh(task)
    assert task.stats == {"publishers": 1, "not_published": 0, "likes": 2, "comments": 1}
    db.refresh(post)
    assert (post.likes, post.comments) == (2, 1)
    assert setup.corp.calls_of("externalcontact/add_moment_task") == 1


def test_refused_moment_is_failed_with_error(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup, post = _post(db, clock, fake_wecom)
    setup.corp.fail_next("externalcontact/add_moment_task", 60111)
    counts = sync_moments(database, setup.config, clock)
    task = db.scalar(select(WecomMomentTask).where(WecomMomentTask.moment_post_id == post.id))
    assert task is not None
    db.refresh(task)
    assert counts["errors"] == 1 and task.status == "failed"
    assert task.error is not None and "60111" in task.error
    db.refresh(setup.integration)
    assert setup.integration.last_error is not None


def test_no_integration_no_moment_task(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup, post = _post(db, clock, fake_wecom)
    setup.integration.is_active = False
    other = make_moment(
        db,
        workspace=setup.workspace,
        clock=clock,
        persona=db.get_one(Persona, post.persona_id),
        content=db.get_one(ContentItem, post.content_id),
        on=clock.now().date(),
        is_marketing=False,
        slot="evening",
    )
    assert publish_post(db, other.id, clock) == "published"
    assert db.scalar(select(WecomMomentTask).where(WecomMomentTask.moment_post_id == other.id)) is None


def _task(db: Session, post: MomentPost) -> WecomMomentTask:
    task = db.scalar(select(WecomMomentTask).where(WecomMomentTask.moment_post_id == post.id))
    assert task is not None
    db.refresh(task)
    return task


def test_failed_job_result_and_result_errors_fail_the_task(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup, post = _post(db, clock, fake_wecom)
    sync_moments(database, setup.config, clock)  # submitted
    job = next(iter(setup.corp.table("moment_jobs").values()))
    job["polls"] = 1
    setup.corp.table("moments")[job["moment_id"]]["senders"] = {}
    job["invalid_users"] = ["lin"]
    job["moment_id"] = ""  # WeCom finished the job without a moment: every sender was invalid
    sync_moments(database, setup.config, clock)
    task = _task(db, post)
    assert task.status == "failed" and task.error is not None and task.moment_id is None


def test_result_errors_fail_the_task_after_a_few_attempts(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup, post = _post(db, clock, fake_wecom)
    sync_moments(database, setup.config, clock)  # submitted
    for attempt in range(MAX_RESULT_ERRORS):
        setup.corp.fail_next("externalcontact/get_moment_task_result", 40058)
        sync_moments(database, setup.config, clock)
        task = _task(db, post)
        assert task.status == ("failed" if attempt == MAX_RESULT_ERRORS - 1 else "creating")
    assert task.error is not None and "40058" in task.error


def test_timed_out_submission_adopts_the_moment_instead_of_resubmitting(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, post = _post(db, clock, fake_wecom)
    original = WecomClient.call

    def lost_answer(self: WecomClient, method: str, api: str, **kwargs: Any) -> dict[str, Any]:
        answer = original(self, method, api, **kwargs)
        if api == "externalcontact/add_moment_task":
            raise WecomError("WeCom did not answer in time", api=api, reason="timeout", retryable=True)
        return answer

    monkeypatch.setattr(WecomClient, "call", lost_answer)
    sync_moments(database, setup.config, clock)
    task = _task(db, post)
    assert task.status == "unknown" and task.jobid is None
    monkeypatch.setattr(WecomClient, "call", original)
    assert sync_moments(database, setup.config, clock)["created"] == 1
    task = _task(db, post)
    (moment_id,) = setup.corp.table("moments")
    assert task.status == "created" and task.moment_id == moment_id and task.error is None
    assert setup.corp.calls_of("externalcontact/add_moment_task") == 1


def test_stats_overwriting_typed_figures_are_audited(
    db: Session, clock: FrozenClock, database: Database, fake_wecom: RunningFake
) -> None:
    setup, post = _post(db, clock, fake_wecom)
    sync_moments(database, setup.config, clock)
    sync_moments(database, setup.config, clock)  # created; stats 0/0 (nobody typed anything)
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "results_from_wecom")).all() == []
    post.likes, post.comments = 9, 4  # an operator typed figures in
    db.flush()
    task = _task(db, post)
    sim_publish(fake_wecom.fake, {"corp_id": setup.corp.corp_id, "moment_id": task.moment_id, "userid": "lin"})
    sim_like(
        fake_wecom.fake,
        {"corp_id": setup.corp.corp_id, "moment_id": task.moment_id, "userid": "lin", "external_userid": "wmA"},
    )
    sync_moments(database, setup.config, clock)
    (entry,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "results_from_wecom")).all()
    assert entry.before == {"likes": 9, "comments": 4} and entry.after == {"likes": 1, "comments": 0}
    db.refresh(post)
    assert (post.likes, post.comments) == (1, 0)
