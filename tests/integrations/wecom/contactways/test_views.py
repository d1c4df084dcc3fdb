"""The landing page shows the real 「联系我」 QR of the scan's route and arm (and the official-account
QR when there is one); the console page lists ways; "sync now" queues the push job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wecom.contactways.service import sync_workspace
from siyu.integrations.wecom.contactways.tasks import PUSH_KIND, push_workspace, queue_code_push
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.livecodes.scan import load_snapshot, snapshots
from siyu.models import (
    Job,
    LiveCodeRoute,
    LiveCodeScan,
    Role,
    User,
    WechatOfficialAccount,
    WecomContactWay,
    Workspace,
)
from tests.factories import make_experiment, make_group, make_live_code, make_workspace
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]


def _arm_code(db: Session, clock: FrozenClock, workspace: Workspace, fake_wecom: RunningFake) -> Any:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    staff = wecom_staff(db, setup, clock=clock, userid="eve", name="伊芙")
    experiment = make_experiment(db, workspace=workspace, clock=clock, variants=[("A", 0), ("B", 1)])
    code = make_live_code(
        db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}], experiment_id=experiment.id
    )
    sync_workspace(db, setup.config, clock)
    db.commit()
    ways = {(w.route_id is None, w.variant): w for w in db.scalars(select(WecomContactWay))}
    return code, ways


def test_the_landing_page_shows_the_way_of_the_scans_arm(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, fake_wecom: RunningFake
) -> None:
    code, ways = _arm_code(db, clock, workspace, fake_wecom)
    route = db.scalar(select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id))
    assert route is not None and route.contact_qr_url == ways[(False, "A")].qr_code  # the first arm's
    for _ in range(2):  # a fresh snapshot, then the cached one
        client.cookies.clear()
        page = client.get(f"/q/{code.slug}")
        scan = db.scalars(select(LiveCodeScan).order_by(LiveCodeScan.id.desc())).first()
        assert scan is not None and scan.variant == "B" and ways[(False, "B")].state == scan.state
        assert f'<img src="{ways[(False, "B")].qr_code}" alt="伊芙" data-testid="staff-qr">' in page.text
        assert ways[(False, "A")].qr_code not in page.text
        assert 'data-testid="official-qr"' not in page.text


def test_without_the_arms_way_the_landing_page_shows_the_arms_pool_never_another_arms_qr(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, fake_wecom: RunningFake
) -> None:
    code, ways = _arm_code(db, clock, workspace, fake_wecom)
    ways[(False, "B")].deleted_at = clock.now()  # e.g. its re-creation failed
    db.commit()
    snapshots.clear()
    page = client.get(f"/q/{code.slug}")
    assert page.status_code == 200
    assert ways[(True, "B")].qr_code in page.text  # the B pool carries B's state
    assert ways[(False, "A")].qr_code not in page.text and ways[(False, "B")].qr_code not in page.text


def test_the_snapshot_carries_the_way_qrs(
    db: Session, clock: FrozenClock, workspace: Workspace, fake_wecom: RunningFake
) -> None:
    code, ways = _arm_code(db, clock, workspace, fake_wecom)
    snapshot = load_snapshot(db, code)
    assert snapshot.way_qrs == {
        (way.route_id, way.variant): way.qr_code for way in ways.values()
    } and snapshot.our_qrs == frozenset(w.qr_code for w in ways.values())
    assert snapshot.official_account is False


def test_the_landing_page_survives_a_failing_official_account_lookup(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    fake_wecom: RunningFake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, ways = _arm_code(db, clock, workspace, fake_wecom)
    _official_account(db, clock, workspace)

    def broken(session: Session, scan: LiveCodeScan) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr("siyu.integrations.wechat.qrcodes.qr_for_scan", broken)
    page = client.get(f"/q/{code.slug}")
    assert page.status_code == 200 and ways[(False, "B")].qr_code in page.text
    assert 'data-testid="official-qr"' not in page.text
    monkeypatch.setattr("siyu.integrations.wechat.qrcodes.qr_for_scan", lambda session, scan: "x" * 8000)
    client.cookies.clear()
    page = client.get(f"/q/{code.slug}")  # too long for a QR code: no image, still the page
    assert page.status_code == 200 and 'data-testid="official-qr"' not in page.text


def _official_account(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    db.add(
        WechatOfficialAccount(
            workspace_id=workspace.id, app_id=f"wxtest{workspace.id}", created_at=clock.now(), updated_at=clock.now()
        )
    )
    db.commit()
    snapshots.clear()


def test_a_group_code_shows_the_join_way_and_the_official_account_qr(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    fake_wecom: RunningFake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    group = make_group(db, workspace=workspace, clock=clock, name="福利一群", members=3)
    group.wecom_chat_id = "wrG1"
    db.flush()
    setup.corp.table("groups")["wrG1"] = {"chat_id": "wrG1", "member_list": []}
    code = make_live_code(db, workspace=workspace, clock=clock, kind="group", routes=[{"group_id": group.id}])
    sync_workspace(db, setup.config, clock)
    _official_account(db, clock, workspace)
    monkeypatch.setattr(
        "siyu.integrations.wechat.qrcodes.qr_for_scan", lambda session, scan: "http://weixin.qq.com/q/x1"
    )
    page = client.get(f"/q/{code.slug}")
    way = db.scalar(
        select(WecomContactWay).where(WecomContactWay.live_code_id == code.id, WecomContactWay.route_id.is_not(None))
    )
    assert way is not None
    assert f'<img src="{way.qr_code}" alt="福利一群" data-testid="group-qr">' in page.text
    assert 'data-testid="official-qr"' in page.text and "关注公众号" in page.text


def test_the_console_page_lists_ways_and_sync_now_queues_the_push(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    fake_wecom: RunningFake,
    user_with_role: Callable[..., User],
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    staff = wecom_staff(db, setup, clock=clock, userid="fay", name="菲")
    code = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}], name="门口海报")
    sync_workspace(db, setup.config, clock)
    operator = user_with_role(Role.OPERATOR)
    db.commit()
    csrf = login(client, operator.email)
    page = client.get("/integrations/wecom/contact-ways")
    assert page.status_code == 200
    ways = db.scalars(select(WecomContactWay).where(WecomContactWay.live_code_id == code.id)).all()
    assert len(ways) == 2
    for way in ways:
        assert f'data-testid="way-{way.config_id}"' in page.text and f"<code>{way.state}</code>" in page.text
    assert "门口海报" in page.text and 'data-testid="last-run"' in page.text
    sent = client.post("/integrations/wecom/contact-ways/sync", data={"csrf_token": csrf, "live_code_id": str(code.id)})
    assert sent.status_code == 303
    job = db.scalar(select(Job).where(Job.kind == PUSH_KIND))
    assert job is not None and (job.workspace_id, job.args) == (workspace.id, {"live_code_id": code.id})
    queued = len(db.scalars(select(Job).where(Job.kind == PUSH_KIND)).all())
    for bad in ("²", "1" * 25):  # "²".isdigit() is True but int("²") raises; 25 digits overflow BIGINT
        refused = client.post("/integrations/wecom/contact-ways/sync", data={"csrf_token": csrf, "live_code_id": bad})
        assert refused.status_code == 422 and "live_code_id" in refused.text
    assert len(db.scalars(select(Job).where(Job.kind == PUSH_KIND)).all()) == queued  # nothing more queued


def test_read_only_roles(db: Session, client: TestClient, user_with_role: Callable[..., User]) -> None:
    analyst = user_with_role(Role.ANALYST)
    csrf = login(client, analyst.email)
    assert client.get("/integrations/wecom/contact-ways").status_code == 403
    assert client.post("/integrations/wecom/contact-ways/sync", data={"csrf_token": csrf}).status_code == 403
    assert db.scalar(select(Job).where(Job.kind == PUSH_KIND)) is None


def test_the_job_skips_a_workspace_without_wecom(db: Session, clock: FrozenClock, database: object) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    assert push_workspace(ws.id, clock) == {"skipped": "not configured"}


def test_a_saved_code_queues_a_push_only_with_wecom(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    plain = make_workspace(db, clock=clock)
    assert not queue_code_push(db, workspace_id=plain.id, live_code_id=1, clock=clock)
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    assert queue_code_push(db, workspace_id=setup.workspace.id, live_code_id=7, clock=clock)
    jobs = db.scalars(select(Job).where(Job.kind == PUSH_KIND)).all()
    assert [(j.workspace_id, j.args) for j in jobs] == [(setup.workspace.id, {"live_code_id": 7})]
