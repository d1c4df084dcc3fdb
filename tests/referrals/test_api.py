"""The referral programs API: CRUD, status, metrics, referrals list, review, tree; scopes and errors."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Role
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import ReferralProgram, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_token
from tests.referrals.factories import World, count

app = api_fixtures.app
client = api_fixtures.client


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.flush()
    return bearer(token)


def test_programs_are_created_changed_and_started(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given an admin and an analyst of a workspace with a live code
    world = World(db, clock)
    admin = _headers(db, clock, world.ws, Role.ADMIN)
    analyst = _headers(db, clock, world.ws, Role.ANALYST)
    body = {
        "name": "双11老带新",
        "condition": "first_order",
        "live_code_id": world.live_code.id,
        "referrer_reward": {"points": 100},
        "unlocks": [{"threshold": 3, "name": "三人礼", "reward": {"points": 300}}],
    }
    # when the analyst and the admin create it, the admin changes and starts it
    refused = client.post("/api/v1/referral-programs", headers=analyst, json=body)
    created = client.post("/api/v1/referral-programs", headers=admin, json=body)
    pid = created.json()["id"]
    bad = client.patch(f"/api/v1/referral-programs/{pid}", headers=admin, json={"condition": "first_order_over"})
    changed = client.patch(f"/api/v1/referral-programs/{pid}", headers=admin, json={"attribution_days": 3})
    started = client.post(f"/api/v1/referral-programs/{pid}/status", headers=admin, json={"status": "active"})
    listed = client.get("/api/v1/referral-programs?status=active", headers=analyst)
    # then the analyst is refused, bad input is a 422 naming the field, the rest applies
    assert refused.status_code == 403
    assert created.status_code == 201
    assert created.json()["unlocks"] == [
        {"id": created.json()["unlocks"][0]["id"], "threshold": 3, "name": "三人礼", "reward": {"points": 300}}
    ]
    assert (bad.status_code, bad.json()["error"]["details"]) == (422, {"field": "min_order_fen"})
    assert (changed.json()["attribution_days"], started.json()["status"]) == (3, "active")
    assert [p["id"] for p in listed.json()] == [pid, world.program.id]
    assert count(db, ReferralProgram, ReferralProgram.workspace_id == world.ws.id) == 2


def test_referrals_review_tree_and_metrics(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given a flagged referral (burst of 2) under member Alice
    world = World(db, clock, burst_threshold=2, referrer_reward={"points": 10})
    alice = world.member(name="Alice")
    code = world.code(alice)
    world.invite(code, name="Bob")
    world.invite(code, name="Carol")
    admin = _headers(db, clock, world.ws, Role.ADMIN)
    # when the queue is read, the flagged one approved, the tree and metrics read
    queue = client.get("/api/v1/referrals?status=flagged", headers=admin).json()
    review = client.post(
        f"/api/v1/referrals/{queue[0]['id']}/review", headers=admin, json={"approve": True, "note": "ok"}
    )
    again = client.post(f"/api/v1/referrals/{queue[0]['id']}/review", headers=admin, json={"approve": True})
    tree = client.get(f"/api/v1/referral-tree?program_id={world.program.id}", headers=admin).json()
    result = client.get(
        f"/api/v1/referral-programs/{world.program.id}/metrics?start=2026-11-23&end=2026-11-23&period=day",
        headers=admin,
    ).json()
    bad_period = client.get(
        f"/api/v1/referral-programs/{world.program.id}/metrics?start=2026-11-23&end=2026-11-22", headers=admin
    )
    # then
    assert len(queue) == 1
    assert (review.status_code, review.json()["status"]) == (200, "qualified")
    assert again.status_code == 409
    assert [(n["name"], sorted(c["name"] for c in n["children"])) for n in tree] == [("Alice", ["Bob", "Carol"])]
    assert (result["totals"]["qualified"], result["totals"]["k_factor"], result["totals"]["cost_fen"]) == (2, 2.0, 20)
    assert bad_period.status_code == 422
