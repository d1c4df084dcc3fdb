"""The experiments API: CRUD, start/finish, results, and the stateless calculators."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import proportions_ztest, samplesize_proportions_2indep_onetail

from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Experiment, Workspace
from tests.api.conftest import bearer
from tests.experiments.factories import add_exposures
from tests.factories import make_experiment, make_token

BODY = {
    "name": "包裹卡钩子",
    "primary_metric": "add_rate",
    "variants": [
        {"key": "A", "name": "免费小样", "weight": 50, "content": {"hook": "免费小样"}},
        {"key": "B", "name": "红包", "weight": 50},
    ],
    "baseline_rate": 0.12,
    "minimum_detectable_effect": 0.2,
}


def _headers(db: Session, clock: FrozenClock, workspace: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=workspace, scopes=scopes)
    db.commit()
    return bearer(token)


def test_create_start_results_and_finish(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace)
    # when a test is created
    created = client.post("/api/v1/experiments", json=BODY, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["status"], body["planned_users_per_arm"], body["started_at"]) == ("draft", 3122, None)
    assert [(v["key"], v["weight"], v["is_control"], v["content"]) for v in body["variants"]] == [
        ("A", 50, True, {"hook": "免费小样"}),
        ("B", 50, False, {}),
    ]
    experiment_id = body["id"]
    # then it can be read, listed and started
    assert client.get(f"/api/v1/experiments/{experiment_id}", headers=headers).json()["name"] == "包裹卡钩子"
    listed = client.get("/api/v1/experiments?status=draft", headers=headers).json()
    assert [e["id"] for e in listed["items"]] == [experiment_id] and listed["next_cursor"] is None
    started = client.post(f"/api/v1/experiments/{experiment_id}/start", headers=headers)
    assert (started.status_code, started.json()["status"], started.json()["started_at"]) == (
        200,
        "running",
        "2026-11-23T02:00:00Z",
    )
    # and its results come from the exposures
    experiment = db.get(Experiment, experiment_id)
    assert experiment is not None
    add_exposures(db, experiment=experiment, key="A", users=1000, conversions=120, at=clock.now())
    add_exposures(db, experiment=experiment, key="B", users=1000, conversions=150, at=clock.now())
    db.commit()
    results = client.get(f"/api/v1/experiments/{experiment_id}/results", headers=headers).json()
    assert results["total_users"] == 2000
    assert [(v["key"], v["users"], v["conversions"]) for v in results["variants"]] == [
        ("A", 1000, 120),
        ("B", 1000, 150),
    ]
    comparison = results["analysis"]["comparisons"][0]
    assert comparison["absolute"]["p_value"] == pytest.approx(proportions_ztest([150, 120], [1000, 1000])[1], rel=1e-9)
    assert comparison["status"] == "collecting"
    assert results["analysis"]["plan"] == {
        "planned_users_per_arm": 3122,
        "progress": pytest.approx(1000 / 3122),
        "is_reached": False,
    }
    finished = client.post(f"/api/v1/experiments/{experiment_id}/finish", headers=headers)
    assert finished.json()["status"] == "finished"
    again = client.post(f"/api/v1/experiments/{experiment_id}/finish", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "experiment_state"


def test_patch_and_delete_a_draft(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    headers = _headers(db, clock, workspace)
    experiment_id = client.post("/api/v1/experiments", json=BODY, headers=headers).json()["id"]
    patched = client.patch(
        f"/api/v1/experiments/{experiment_id}",
        json={
            "hypothesis": "红包带来更多添加",
            "variants": [{"key": "A", "name": "a", "weight": 70}, {"key": "B", "name": "b", "weight": 30}],
        },
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    assert [v["weight"] for v in patched.json()["variants"]] == [70, 30]
    assert patched.json()["hypothesis"] == "红包带来更多添加"
    cleared = client.patch(f"/api/v1/experiments/{experiment_id}", json={"name": None}, headers=headers)
    assert cleared.status_code == 422 and cleared.json()["error"]["details"] == {"field": "name"}
    assert client.delete(f"/api/v1/experiments/{experiment_id}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/experiments/{experiment_id}", headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants": [{"key": "A", "name": "a", "weight": 60}, {"key": "B", "name": "b", "weight": 30}]}, "variants"),
        (
            {"variants": [{"key": "A/B", "name": "a", "weight": 50}, {"key": "B", "name": "b", "weight": 50}]},
            "variants[0].key",
        ),
        ({"primary_metric": "gmv"}, "primary_metric"),
        ({"minimum_detectable_effect": None}, "minimum_detectable_effect"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, change: dict[str, object], field: str
) -> None:
    headers = _headers(db, clock, workspace)
    response = client.post("/api/v1/experiments", json=BODY | change, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == {"field": field}
    assert db.scalar(select(func.count()).select_from(Experiment).where(Experiment.workspace_id == workspace.id)) == 0


def test_readers_cannot_write_and_nothing_changes(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    experiment = make_experiment(db, workspace=workspace, clock=clock)
    headers = _headers(db, clock, workspace, scopes=["acquisition:read"])
    assert client.get(f"/api/v1/experiments/{experiment.id}/results", headers=headers).status_code == 200
    assert client.post("/api/v1/experiments", json=BODY, headers=headers).status_code == 403
    assert client.post(f"/api/v1/experiments/{experiment.id}/finish", headers=headers).status_code == 403
    db.refresh(experiment)
    assert experiment.status == "running"
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity_type == "experiment")) == 0
    nothing = _headers(db, clock, workspace, scopes=["customers:read"])
    assert client.get("/api/v1/experiments", headers=nothing).status_code == 403
    analyze = client.post("/api/v1/experiments/analyze", json={"arms": []}, headers=nothing)
    assert analyze.status_code == 403
    assert client.post("/api/v1/experiments/analyze", json={"arms": []}).status_code == 401


def test_analyze_returns_every_figure(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace, scopes=["acquisition:read"])
    body = {
        "arms": [
            {"name": "control", "users": 1000, "conversions": 120},
            {"name": "B", "users": 1000, "conversions": 150},
            {"name": "C", "users": 1000, "conversions": 100},
        ],
        "planned_users_per_arm": 3000,
        "metric": "add_rate",
    }
    response = client.post("/api/v1/experiments/analyze", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {
        "metric",
        "alpha",
        "confidence_level",
        "arms",
        "comparisons",
        "sample_ratio",
        "plan",
        "correction",
        "notes",
        "enough_data",
    }
    assert (result["correction"], result["enough_data"], result["confidence_level"]) == ("bonferroni", False, 0.95)
    b, c = result["comparisons"]
    assert set(b) == {
        "arm",
        "control",
        "rate",
        "control_rate",
        "absolute",
        "relative",
        "chance_to_beat_control",
        "expected_loss",
        "expected_loss_control",
        "significant",
        "status",
        "explanation",
    }
    p_b = proportions_ztest([150, 120], [1000, 1000])[1]
    assert (b["absolute"]["p_value"], b["absolute"]["p_value_adjusted"]) == (pytest.approx(p_b), pytest.approx(2 * p_b))
    assert b["relative"]["estimate"] == pytest.approx(0.25)
    assert c["relative"]["estimate"] == pytest.approx(-1 / 6)
    assert b["explanation"]["zh_CN"] == "B 的添加率高 25%，但数据还不足以下结论（已收集计划样本量的 33.3%）"
    assert result["sample_ratio"] == {
        "chi_square": 0.0,
        "p_value": 1.0,
        "flagged": False,
        "expected_users": [1000.0, 1000.0, 1000.0],
        "weights": [1.0, 1.0, 1.0],
    }


@pytest.mark.parametrize(
    ("arms", "field", "message"),
    [
        ([{"name": "control", "users": 1000, "conversions": 120}], "arms", "at least 2 arms"),
        (
            [{"name": "control", "users": 1000, "conversions": 120}, {"name": "B", "users": 100, "conversions": 150}],
            "arms[1].conversions",
            "arm 'B': conversions (150) exceed users (100)",
        ),
        (
            [{"name": "control", "users": -5, "conversions": 0}, {"name": "B", "users": 100, "conversions": 1}],
            "arms[0].users",
            "arm 'control': users must not be negative",
        ),
        (
            [{"name": "control", "users": 0, "conversions": 0}, {"name": "B", "users": 100, "conversions": 1}],
            "arms[0].users",
            "arm 'control': users must be at least 1",
        ),
    ],
)
def test_analyze_rejects_bad_arms_by_name(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    arms: list[dict[str, object]],
    field: str,
    message: str,
) -> None:
    headers = _headers(db, clock, workspace, scopes=["acquisition:read"])
    response = client.post("/api/v1/experiments/analyze", json={"arms": arms}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": field}
    assert message in response.json()["error"]["message"]


def test_sample_size_endpoint(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    headers = _headers(db, clock, workspace, scopes=["acquisition:read"])
    response = client.post(
        "/api/v1/experiments/sample-size",
        json={"baseline_rate": 0.12, "minimum_detectable_effect": 0.2},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json()["users_per_arm"] == 3122
    absolute = client.post(
        "/api/v1/experiments/sample-size",
        json={"baseline_rate": 0.05, "minimum_detectable_effect": 0.01, "relative": False, "power": 0.9},
        headers=headers,
    ).json()
    expected = samplesize_proportions_2indep_onetail(diff=0.01, prop2=0.05, power=0.9, alpha=0.05)
    assert absolute["users_per_arm"] == int(expected) + 1
    bad = client.post(
        "/api/v1/experiments/sample-size",
        json={"baseline_rate": 1.5, "minimum_detectable_effect": 0.2},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"] == {"field": "baseline_rate"}
    not_a_number = client.post(
        "/api/v1/experiments/sample-size",
        json={"baseline_rate": "abc", "minimum_detectable_effect": 0.2},
        headers=headers,
    )
    assert not_a_number.status_code == 422 and not_a_number.json()["error"]["details"][0]["field"] == "baseline_rate"
