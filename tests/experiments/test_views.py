"""The experiments console: list, form with the sample-size calculator, result page, start/finish."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.experiments.assignment import variants_of
from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Experiment, ExperimentStatus, Role, User, Workspace
from tests.experiments.factories import add_exposures
from tests.factories import make_experiment
from tests.web.conftest import login


def _experiment_with_data(db: Session, workspace: Workspace, clock: FrozenClock, *, b_users: int = 1000) -> Experiment:
    """12.0 % vs 15.0 % add rate on 1000 users per variant, planned 3122 per variant."""
    experiment = make_experiment(
        db, workspace=workspace, clock=clock, name="包裹卡钩子", variants=[("A", 50), ("B", 50)]
    )
    experiment.baseline_rate, experiment.minimum_detectable_effect, experiment.planned_users_per_arm = 0.12, 0.2, 3122
    add_exposures(db, experiment=experiment, key="A", users=1000, conversions=120, at=clock.now())
    add_exposures(db, experiment=experiment, key="B", users=b_users, conversions=150, at=clock.now())
    db.commit()
    return experiment


def _row(html: str, key: str) -> str:
    match = re.search(rf'<tr data-variant="{key}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {key}"
    return match.group(1)


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def test_list_shows_status_metric_users_and_leader(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    experiment = _experiment_with_data(db, workspace, clock)
    draft = make_experiment(db, workspace=workspace, clock=clock, name="短信文案", status=ExperimentStatus.DRAFT)
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)
    page = client.get("/experiments")
    assert page.status_code == 200
    row = re.search(rf'<tr data-experiment="{experiment.id}">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert _text(row.group(1)) == "包裹卡钩子 运行中 添加率 2 2,000 B · 方案 B 15.00%"
    draft_row = re.search(rf'<tr data-experiment="{draft.id}">(.*?)</tr>', page.text, re.S)
    assert draft_row is not None and _text(draft_row.group(1)) == "短信文案 草稿 添加率 2 0 —"
    assert 'id="new-experiment"' in page.text


def test_result_page_shows_exact_figures_and_not_enough_data(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    experiment = _experiment_with_data(db, workspace, clock)
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get(f"/experiments/{experiment.id}")
    assert page.status_code == 200
    html = page.text
    assert _text(_row(html, "A")) == "A · 方案 A 对照 50% 1,000 120 12.00% [10.13%, 14.16%] 对照"
    assert _text(_row(html, "B")) == (
        "B · 方案 B 50% 1,000 150 15.00% [12.92%, 17.35%] +3.00% [+0.01%, +5.99%] +25.0% [-2.9%, +52.9%] "
        "0.0496 97.5% 0.014%"
    )
    banner = re.search(
        r'<div class="alert alert-warning" role="status" id="not-enough-data">(.*?)</div>\s*</div>', html, re.S
    )
    assert banner is not None
    assert "数据还不足以下结论" in banner.group(1)
    assert "计划每组 3,122 位用户，用户最少的一组已达到 32%" in banner.group(1)
    assert 'style="width: 32%"' in banner.group(1)
    assert (
        "B 的添加率高 25%，但数据还不足以下结论（已收集计划样本量的 32%；未到计划样本量时的显著结果并不可靠）" in html
    )
    assert 'id="srm-warning"' not in html and 'id="bonferroni"' not in html
    assert '<span id="planned-users">3,122</span>' in html
    # the chart gets the rates and intervals in percent
    assert '"rates": [12.0, 15.0]' in html and '"lows": [10.1299, 12.921]' in html
    # an analyst reads but cannot act
    assert 'id="actions"' not in html and 'id="finish"' not in html


def test_result_page_in_english(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    experiment = _experiment_with_data(db, workspace, clock, b_users=1200)
    token = login(client, user_with_role(Role.ANALYST).email)
    client.post("/locale", data={"locale": "en", "next": "/experiments", "csrf_token": token})
    html = unescape(client.get(f"/experiments/{experiment.id}").text)
    assert "B's add rate is 4.2% higher, but there is not enough data yet to conclude" in html
    assert "Not enough data yet" in html and "Difference (95% CI)" in html and "Chance to beat control" in html
    assert 'id="srm-warning"' in html
    assert "Warning: sample ratio mismatch (SRM, p < 0.001)" in html
    assert "The users per variant do not match the planned weights" in html


def test_operator_starts_and_finishes_an_experiment(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    experiment = make_experiment(db, workspace=workspace, clock=clock, status=ExperimentStatus.DRAFT)
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get(f"/experiments/{experiment.id}").text
    assert 'id="start"' in page and "每个方案都至少需要一位用户才能计算统计结果。" in page
    assert client.post(f"/experiments/{experiment.id}/start", data={}).status_code == 403  # no CSRF token
    started = client.post(f"/experiments/{experiment.id}/start", data={"csrf_token": token})
    assert (started.status_code, started.headers["location"]) == (303, f"/experiments/{experiment.id}")
    db.refresh(experiment)
    assert (experiment.status, experiment.started_at) == (ExperimentStatus.RUNNING, clock.now())
    page = client.get(f"/experiments/{experiment.id}").text
    assert "实验已开始，访客将按权重分流" in page and 'id="finish"' in page
    assert client.post(f"/experiments/{experiment.id}/finish", data={"csrf_token": token}).status_code == 303
    db.refresh(experiment)
    assert experiment.status == ExperimentStatus.FINISHED
    conflict = client.post(f"/experiments/{experiment.id}/finish", data={"csrf_token": token})
    assert conflict.status_code == 409 and "only a running experiment can finish" in conflict.text


def test_analyst_cannot_change_anything(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    experiment = make_experiment(db, workspace=workspace, clock=clock, status=ExperimentStatus.DRAFT)
    db.commit()
    token = login(client, user_with_role(Role.ANALYST).email)
    assert 'id="new-experiment"' not in client.get("/experiments").text
    assert client.get("/experiments/new").status_code == 403
    assert client.post(f"/experiments/{experiment.id}/start", data={"csrf_token": token}).status_code == 403
    form = {"csrf_token": token, "name": "偷偷改名", "metric": "add_rate", "variant_key": ["A", "B"]}
    assert client.post(f"/experiments/{experiment.id}/edit", data=form).status_code == 403
    assert client.post("/experiments", data=form).status_code == 403
    db.refresh(experiment)
    assert (experiment.status, experiment.name != "偷偷改名") == (ExperimentStatus.DRAFT, True)
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity_type == "experiment")) == 0
    assert db.scalar(select(func.count()).select_from(Experiment).where(Experiment.workspace_id == workspace.id)) == 1


def test_sample_size_fragment_follows_the_planning_fields(
    client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.ANALYST).email)
    two = client.get("/experiments/sample-size?baseline=12&mde=20&power=80&alpha=5&variant_key=A&variant_key=B")
    assert two.status_code == 200
    assert '<span class="users-per-arm">3,122</span>' in two.text and "共 2 组，合计 6,244 位用户" in two.text
    three = client.get(
        "/experiments/sample-size?baseline=12&mde=20&variant_key=A&variant_key=B&variant_key=C&variant_key="
    )
    assert 'data-users-per-arm="3781"' in three.text and "每次比较 2.50%" in three.text
    larger_effect = client.get("/experiments/sample-size?baseline=12&mde=40")
    assert 'data-users-per-arm="839"' in larger_effect.text
    bad = client.get("/experiments/sample-size?baseline=abc&mde=20")
    assert 'data-error="plan"' in bad.text and "baseline_rate must be a number" in bad.text
    empty = client.get("/experiments/sample-size?baseline=&mde=20")
    assert "填写基线转化率和最小可检测提升后" in empty.text


def test_create_from_the_form_and_errors_keep_the_values(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    form_page = client.get("/experiments/new").text
    assert 'hx-get="/experiments/sample-size"' in form_page and 'id="sample-size"' in form_page
    form = {
        "csrf_token": token,
        "name": "包裹卡钩子",
        "hypothesis": "红包带来更多添加",
        "metric": "add_rate",
        "window": "7",
        "baseline": "12",
        "mde": "20",
        "power": "80",
        "alpha": "5",
        "control": "0",
        "variant_key": ["A", "B", "", ""],
        "variant_name": ["免费小样", "红包", "", ""],
        "variant_weight": ["50", "40", "", ""],
        "variant_hook": ["送小样", "", "", ""],
    }
    # weights that don't sum to 100 are refused, with the values kept
    refused = client.post("/experiments", data=form)
    assert refused.status_code == 422
    assert "variant weights are percentages and must sum to 100 (they sum to 90)" in refused.text
    assert 'value="红包"' in refused.text and 'value="40"' in refused.text
    assert '<span class="users-per-arm">3,122</span>' in refused.text
    assert db.scalar(select(func.count()).select_from(Experiment).where(Experiment.workspace_id == workspace.id)) == 0
    # fixed, it is created as a draft
    created = client.post("/experiments", data=form | {"variant_weight": ["50", "50", "", ""]})
    assert created.status_code == 303
    experiment = db.scalars(select(Experiment).where(Experiment.workspace_id == workspace.id)).one()
    assert created.headers["location"] == f"/experiments/{experiment.id}"
    assert (experiment.status, experiment.planned_users_per_arm, experiment.hypothesis) == (
        "draft",
        3122,
        "红包带来更多添加",
    )
    assert [(v.key, v.name, v.weight, v.is_control, v.content) for v in variants_of(db, experiment.id)] == [
        ("A", "免费小样", 50, True, {"hook": "送小样"}),
        ("B", "红包", 50, False, {}),
    ]
    # and edited while a draft
    edited = client.post(
        f"/experiments/{experiment.id}/edit",
        data=form | {"variant_weight": ["30", "70", "", ""], "control": "1", "mde": "30"},
    )
    assert edited.status_code == 303
    db.refresh(experiment)
    assert [(v.weight, v.is_control) for v in variants_of(db, experiment.id)] == [(30, False), (70, True)]
    assert experiment.planned_users_per_arm == 1440


def test_a_running_experiment_edits_only_name_and_hypothesis(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    experiment = make_experiment(db, workspace=workspace, clock=clock, name="旧名")
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get(f"/experiments/{experiment.id}/edit").text
    assert 'name="variant_weight" inputmode="numeric" size="4" value="1" disabled' in page
    saved = client.post(
        f"/experiments/{experiment.id}/edit", data={"csrf_token": token, "name": "新名", "hypothesis": "h"}
    )
    assert saved.status_code == 303
    db.refresh(experiment)
    assert (experiment.name, experiment.hypothesis) == ("新名", "h")
    assert [v.weight for v in variants_of(db, experiment.id)] == [1, 1]


def test_unknown_experiment_is_a_404_page(
    client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.OPERATOR).email)
    response = client.get("/experiments/987654")
    assert response.status_code == 404 and "experiment 987654 not found" in response.text
