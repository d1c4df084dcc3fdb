"""The tag sync page: link counts, runs and issues; "pull now" / "push now" queue their jobs."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.tags import simulate_create
from siyu.integrations.wecom.tags.state import load_map
from siyu.integrations.wecom.tags.sync import pull
from siyu.integrations.wecom.tags.tasks import PULL_KIND, PUSH_KIND, run_tag_sync
from siyu.kit.clock import FrozenClock
from siyu.models import Job, Role, User, Workspace
from tests.factories import make_tag
from tests.integrations.wecom.helpers import wecom_workspace
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]


def test_the_page_shows_links_runs_and_issues_and_queues_jobs(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    fake_wecom: RunningFake,
    user_with_role: Callable[..., User],
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="等级", names=["VIP", "铁粉"])
    make_tag(db, workspace=workspace, name="本地标签")
    pull(db, setup.config, clock)
    tmap = load_map(db, workspace.id, clock)
    tmap.issue("rename_conflict", "tag 'A' / WeCom 'B': 'B' kept", clock)
    tmap.save()
    operator = user_with_role(Role.OPERATOR)
    db.commit()
    run_id = run_tag_sync(workspace.id, "pull", clock)["run_id"]
    csrf = login(client, operator.email)
    page = client.get("/integrations/wecom/tags")
    assert page.status_code == 200
    assert '<div class="h2 mb-0" data-testid="linked">2 / 3</div>' in page.text
    assert '<div class="h2 mb-0" data-testid="groups-linked">1</div>' in page.text
    assert f'data-testid="run-{run_id}"' in page.text
    assert (
        "<code>rename_conflict</code>" in page.text
        and "tag &#39;A&#39; / WeCom &#39;B&#39;: &#39;B&#39; kept" in page.text
    )
    for path, kind in (("pull", PULL_KIND), ("push", PUSH_KIND)):
        for _twice in range(2):  # a second click while the first job waits queues nothing
            sent = client.post(f"/integrations/wecom/tags/{path}", data={"csrf_token": csrf})
            assert sent.status_code == 303
        [job] = db.scalars(select(Job).where(Job.kind == kind)).all()
        assert (job.workspace_id, job.args) == (workspace.id, {})
    page = client.get("/integrations/wecom/tags")
    assert 'data-testid="pull-now" disabled' in page.text and 'data-testid="push-now" disabled' in page.text


def test_pending_retries_held_deletions_and_group_opt_in(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    fake_wecom: RunningFake,
    user_with_role: Callable[..., User],
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    local = make_tag(db, workspace=workspace, name="本地标签")
    tmap = load_map(db, workspace.id, clock)
    tmap.add_pending({"customer_id": 999999, "tag_id": local.id, "is_added": True, "attempts": 2})
    tmap.confirm = {"pull": 12}
    tmap.save()
    operator = user_with_role(Role.OPERATOR)
    db.commit()
    csrf = login(client, operator.email)
    page = client.get("/integrations/wecom/tags")
    assert "<tr><td>#999999</td><td>本地标签</td><td>2</td></tr>" in page.text
    assert "企业微信中删除了 12 个标签，确认后才会在私域删除。" in page.text
    assert (
        client.post(f"/integrations/wecom/tags/groups/{local.group_id}/sync", data={"csrf_token": csrf}).status_code
        == 303
    )
    db.expire_all()
    assert load_map(db, workspace.id, clock).push_groups == [local.group_id]
    assert client.post("/integrations/wecom/tags/confirm-deletes", data={"csrf_token": csrf}).status_code == 303
    args = db.scalars(select(Job.args).where(Job.kind == PUSH_KIND).order_by(Job.id)).all()
    assert args == [{}, {"allow_mass_delete": True}]
    assert setup.config.workspace_id == workspace.id


def test_roles_without_integrations_scopes_are_refused(
    db: Session, client: TestClient, user_with_role: Callable[..., User]
) -> None:
    analyst = user_with_role(Role.ANALYST)
    csrf = login(client, analyst.email)
    assert client.get("/integrations/wecom/tags").status_code == 403
    assert client.post("/integrations/wecom/tags/push", data={"csrf_token": csrf}).status_code == 403
    assert db.scalar(select(Job).where(Job.kind.in_([PULL_KIND, PUSH_KIND]))) is None
