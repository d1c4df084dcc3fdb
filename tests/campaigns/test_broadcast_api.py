"""The broadcasts API end to end: drafts, the approval flow, cancel, forecast and results; roles;
bad references and bad bodies refused with nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Actor
from siyu.campaigns.broadcasts.forecast import OUTCOMES
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Broadcast, Delivery, Role, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_customer, make_token, make_workspace
from tests.messaging.factories import make_account, make_content, make_policy
from tests.segments.factories import make_consent, make_segment

app = api_fixtures.app
client = api_fixtures.client


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def _world(db: Session, clock: FrozenClock, customers: int, **policy: Any) -> tuple[Workspace, dict[str, Any]]:
    """A workspace with `customers` members in a segment, a sandbox account, a content item and a policy;
    returns it and a broadcast body using them."""
    ws = make_workspace(db, clock=clock)
    ids = [make_customer(db, actor=Actor.system(ws.id), clock=clock).customer.id for _ in range(customers)]
    segment = make_segment(db, workspace=ws, clock=clock, members=ids)
    account = make_account(db, workspace=ws, clock=clock)
    item = make_content(db, workspace=ws, clock=clock, body="双十一会员专享礼已到账")
    make_policy(db, workspace=ws, clock=clock, **policy)
    body = {
        "name": "双十一预热",
        "segment_id": segment.id,
        "channel_account_ids": [account.id],
        "variants": [{"key": "A", "content_id": item.id, "weight": 100}],
        "brief": {"objective": "拉动复购"},
    }
    return ws, body


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_an_operator_over_the_threshold_waits_for_an_admin(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given 20 customers and an approval threshold of 10
    ws, body = _world(db, clock, 20, approval_threshold=10)
    operator, admin = _headers(db, clock, ws, Role.OPERATOR), _headers(db, clock, ws, Role.ADMIN)
    # when an operator drafts and submits, tries to approve, and an admin approves
    created = client.post("/api/v1/broadcasts", headers=operator, json=body)
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    submitted = client.post(f"/api/v1/broadcasts/{broadcast_id}/submit", headers=operator)
    self_approved = client.post(f"/api/v1/broadcasts/{broadcast_id}/approve", headers=operator)
    pending = client.get("/api/v1/broadcasts", headers=operator, params={"status": "pending_approval"})
    approved = client.post(f"/api/v1/broadcasts/{broadcast_id}/approve", headers=admin)
    again = client.post(f"/api/v1/broadcasts/{broadcast_id}/approve", headers=admin)
    # then it waits for approval, only the admin may give it, and then it is scheduled
    assert created.json()["status"] == "draft" and created.json()["brief"]["objective"] == "拉动复购"
    assert (submitted.json()["status"], submitted.json()["audience_size"]) == ("pending_approval", 20)
    assert self_approved.status_code == 403
    assert [b["id"] for b in pending.json()] == [broadcast_id]
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approved_by"]) == ("scheduled", "token:test")
    assert again.status_code == 409
    assert client.get("/api/v1/broadcasts", headers=admin, params={"status": "pending_approval"}).json() == []


def test_under_the_threshold_it_is_scheduled_and_can_be_cancelled(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given 5 customers and a threshold of 10
    ws, body = _world(db, clock, 5, approval_threshold=10)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    # when an operator submits, then edits and cancels
    broadcast_id = client.post("/api/v1/broadcasts", headers=operator, json=body).json()["id"]
    submitted = client.post(f"/api/v1/broadcasts/{broadcast_id}/submit", headers=operator)
    edit = client.put(f"/api/v1/broadcasts/{broadcast_id}", headers=operator, json=body | {"name": "改名"})
    cancelled = client.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=operator)
    twice = client.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=operator)
    # then it was scheduled without approval, could not be edited any more, and is cancelled once
    assert (submitted.json()["status"], submitted.json()["approved_by"]) == ("scheduled", None)
    assert edit.status_code == 409
    assert cancelled.json()["status"] == "cancelled"
    assert twice.status_code == 409


def test_a_draft_can_be_changed(db: Session, database: Database, clock: FrozenClock, client: TestClient) -> None:
    # given a draft
    ws, body = _world(db, clock, 2)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    broadcast_id = client.post("/api/v1/broadcasts", headers=operator, json=body).json()["id"]
    # when it is renamed with a 10% holdout
    changed = client.put(
        f"/api/v1/broadcasts/{broadcast_id}", headers=operator, json=body | {"name": "改名", "holdout_pct": 10}
    )
    # then the change is saved
    assert (changed.json()["name"], changed.json()["holdout_pct"], changed.json()["status"]) == ("改名", 10, "draft")
    assert client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=operator).json()["name"] == "改名"


def test_bad_broadcasts_are_refused_and_write_nothing(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given a workspace, another workspace's account and content, and an empty segment
    ws, body = _world(db, clock, 3)
    other = make_workspace(db, clock=clock)
    foreign_account = make_account(db, workspace=other, clock=clock)
    foreign_item = make_content(db, workspace=other, clock=clock)
    empty = make_segment(db, workspace=ws, clock=clock, members=[])
    bad_item = make_content(db, workspace=ws, clock=clock, body="{{ nmae }}")  # written around the service
    operator = _headers(db, clock, ws, Role.OPERATOR)
    # when broadcasts with bad references or bad bodies are posted
    cases = [
        (body | {"channel_account_ids": [foreign_account.id]}, "channel_account_ids.0"),
        (body | {"variants": [{"key": "A", "content_id": foreign_item.id}]}, "variants.0.content_id"),
        (body | {"variants": [{"key": "A", "content_id": bad_item.id}]}, "variants.0.content_id"),
        (body | {"segment_id": 999_999}, "segment_id"),
    ]
    refused = [client.post("/api/v1/broadcasts", headers=operator, json=b) for b, _ in cases]
    malformed = [
        client.post("/api/v1/broadcasts", headers=operator, json=b)
        for b in (
            body | {"name": "双十一\x00"},
            body | {"holdout_pct": 80},
            body | {"channel_account_ids": "1"},
            body | {"variants": []},
            body | {"scheduled_at": "2026-11-24T20:00:00"},
            body | {"segment_id": 2**70},
        )
    ]
    # then each is a 422 naming its field, and no broadcast exists
    assert [r.status_code for r in refused] == [422] * 4
    fields = [r.json()["error"]["details"]["field"] for r in refused]
    assert fields == [field for _, field in cases]
    assert refused[2].json()["error"]["details"]["template_field"] == "body"
    assert refused[2].json()["error"]["details"]["variable"] == "nmae"
    assert refused[2].json()["error"]["message"].startswith(f"content {bad_item.name!r}: body: unknown variable 'nmae'")
    assert [r.status_code for r in malformed] == [422] * 6
    assert _count(db, Broadcast) == 0
    # and submitting a broadcast of an empty segment is a 422 naming the segment
    draft = client.post("/api/v1/broadcasts", headers=operator, json=body | {"segment_id": empty.id}).json()
    submitted = client.post(f"/api/v1/broadcasts/{draft['id']}/submit", headers=operator)
    assert submitted.status_code == 422 and submitted.json()["error"]["details"] == {"field": "segment_id"}
    assert client.get(f"/api/v1/broadcasts/{draft['id']}", headers=operator).json()["status"] == "draft"


def test_another_workspaces_broadcast_is_not_found(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given a broadcast in one workspace
    ws, body = _world(db, clock, 1)
    broadcast_id = client.post("/api/v1/broadcasts", headers=_headers(db, clock, ws, Role.ADMIN), json=body).json()[
        "id"
    ]
    stranger = _headers(db, clock, make_workspace(db, clock=clock), Role.ADMIN)
    # when another workspace reads, submits or cancels it, then it is not found
    assert client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=stranger).status_code == 404
    assert client.post(f"/api/v1/broadcasts/{broadcast_id}/submit", headers=stranger).status_code == 404
    assert client.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=stranger).status_code == 404
    assert client.get(f"/api/v1/broadcasts/{broadcast_id}/results", headers=stranger).status_code == 404


@pytest.mark.parametrize(
    ("role", "read", "write", "approve"),
    [
        (Role.ADMIN, 200, 201, 200),
        (Role.OPERATOR, 200, 201, 403),
        (Role.ANALYST, 200, 403, 403),
        (Role.STORE_MANAGER, 403, 403, 403),
        (Role.STAFF, 403, 403, 403),
    ],
)
def test_role_matrix(
    db: Session,
    database: Database,
    clock: FrozenClock,
    client: TestClient,
    role: Role,
    read: int,
    write: int,
    approve: int,
) -> None:
    # given a broadcast awaiting approval (an operator submitted 3 customers over a threshold of 2)
    ws, body = _world(db, clock, 3, approval_threshold=2)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    pending = client.post("/api/v1/broadcasts", headers=operator, json=body).json()["id"]
    client.post(f"/api/v1/broadcasts/{pending}/submit", headers=operator)
    headers = _headers(db, clock, ws, role)
    # when `role` lists, forecasts, reads results, creates and approves
    reads = [
        client.get("/api/v1/broadcasts", headers=headers),
        client.get(f"/api/v1/broadcasts/{pending}", headers=headers),
        client.post("/api/v1/broadcasts/forecast", headers=headers, json=body),
        client.get(f"/api/v1/broadcasts/{pending}/results", headers=headers),
    ]
    created = client.post("/api/v1/broadcasts", headers=headers, json=body)
    approved = client.post(f"/api/v1/broadcasts/{pending}/approve", headers=headers)
    # then each answer matches the role
    assert [r.status_code for r in reads] == [read] * 4
    assert created.status_code == write
    assert approved.status_code == approve


def test_forecast_endpoint_writes_nothing(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given 10 customers, 2 unsubscribed from SMS, on an SMS-simulating sandbox
    ws = make_workspace(db, clock=clock)
    customers = [make_customer(db, actor=Actor.system(ws.id), clock=clock).customer for _ in range(10)]
    for customer in customers[:2]:
        make_consent(db, customer=customer, channel="sms", status="unsubscribed", at=clock.now())
    segment = make_segment(db, workspace=ws, clock=clock, members=[c.id for c in customers])
    account = make_account(db, workspace=ws, clock=clock, settings={"consent_channel": "sms"})
    item = make_content(db, workspace=ws, clock=clock)
    make_policy(db, workspace=ws, clock=clock, approval_threshold=5)
    headers = _headers(db, clock, ws, Role.OPERATOR)
    body = {
        "name": "预估",
        "segment_id": segment.id,
        "channel_account_ids": [account.id],
        "variants": [{"key": "A", "content_id": item.id}],
    }
    # when forecast over the API
    response = client.post("/api/v1/broadcasts/forecast", headers=headers, json=body)
    # then the numbers are exact and nothing was saved
    assert response.status_code == 200, response.text
    assert response.json() == {
        "audience": 10,
        "sampled": 10,
        "by_outcome": {o: {"unsubscribed": 2, "queued": 8}.get(o, 0) for o in OUTCOMES},
        "sendable": 8,
        "needs_approval": True,
    }
    assert (_count(db, Broadcast), _count(db, Delivery)) == (0, 0)
    # and a bad body is a 422 naming the field
    bad = client.post("/api/v1/broadcasts/forecast", headers=headers, json=body | {"segment_id": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "segment_id"


def test_results_of_a_sent_broadcast(db: Session, database: Database, clock: FrozenClock, client: TestClient) -> None:
    # given a broadcast to 3 customers, submitted and dispatched on the sandbox
    from siyu.campaigns.broadcasts.tasks import dispatch

    ws, body = _world(db, clock, 3)
    admin = _headers(db, clock, ws, Role.ADMIN)
    broadcast_id = client.post("/api/v1/broadcasts", headers=admin, json=body).json()["id"]
    client.post(f"/api/v1/broadcasts/{broadcast_id}/submit", headers=admin)
    dispatch(database, clock)
    # when its results are read
    results = client.get(f"/api/v1/broadcasts/{broadcast_id}/results", headers=admin)
    # then all three were sent, counted per variant, with no holdout to compare against
    assert results.status_code == 200, results.text
    data = results.json()
    assert data["broadcast"]["id"] == broadcast_id and data["broadcast"]["status"] == "done"
    assert (data["planned"], data["sent"], data["failed"]) == (3, 3, 0)
    assert [(v["key"], v["recipients"], v["sent"]) for v in data["variants"]] == [("A", 3, 3)]
    assert (data["holdout"], data["uplift"]) == (None, None)
    assert data["treated"]["customers"] == 3
