"""Transactional messages: idempotent by key, past caps and quiet hours, sent before marketing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Delivery, SandboxMessage
from tests.factories import actor_for, make_customer, make_token, make_workspace
from tests.messaging.factories import make_account, make_content, make_policy


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=database, clock=clock, run_worker=False)) as c:
        yield c


def test_a_transactional_message_passes_quiet_hours_and_a_full_cap_once_per_key(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given 23:00 in Shanghai (quiet hours) and a customer whose daily cap of 0 allows no marketing
    clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))
    workspace = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, name="王芳").customer
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 0}}, quiet_start="21:00", quiet_end="09:00")
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(
        db, workspace=workspace, clock=clock, body="{{ name }}，您的券码 {{ coupon_code }} 已发放", is_marketing=False
    )
    token = make_token(db, clock=clock, workspace=workspace, scopes=["touch:write"])
    db.commit()
    body = {
        "customer_id": customer.id,
        "content_id": item.id,
        "channel_account_ids": [account.id],
        "idempotency_key": "order-8812-coupon",
        "variables": {"coupon_code": "VIP-2026"},
    }
    headers = {"Authorization": f"Bearer {token}"}
    # when it is posted twice with the same key
    first = client.post("/api/v1/messages", json=body, headers=headers)
    again = client.post("/api/v1/messages", json=body, headers=headers)
    # then one delivery is queued for now, and the sweep sends it with the variables filled in
    assert first.status_code == 200, first.text
    assert first.json() == again.json()
    assert first.json()["status"] == "queued"
    dispatch(database, clock)
    db.expire_all()
    assert [m.message["text"] for m in db.scalars(select(SandboxMessage))] == ["王芳，您的券码 VIP-2026 已发放"]
    assert db.scalars(select(Delivery)).one().slot_at is None  # took no cap slot


def test_bad_transactional_requests_are_refused_with_the_field(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    workspace = make_workspace(db, clock=clock)
    other = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, name="王芳").customer
    account = make_account(db, workspace=workspace, clock=clock)
    foreign = make_content(db, workspace=other, clock=clock, is_marketing=False)
    item = make_content(db, workspace=workspace, clock=clock, is_marketing=False)
    promotion = make_content(db, workspace=workspace, clock=clock)
    writer = make_token(db, clock=clock, workspace=workspace, scopes=["touch:write"])
    reader = make_token(db, clock=clock, workspace=workspace, scopes=["touch:read"])
    db.commit()
    base = {
        "customer_id": customer.id,
        "content_id": item.id,
        "channel_account_ids": [account.id],
        "idempotency_key": "k",
    }

    def post(body: dict[str, object], token: str = writer) -> tuple[int, object]:
        response = client.post("/api/v1/messages", json=body, headers={"Authorization": f"Bearer {token}"})
        return response.status_code, response.json()["error"].get("details")

    assert post(base | {"content_id": foreign.id}) == (422, {"field": "content_id"})
    assert post(base | {"content_id": promotion.id}) == (422, {"field": "content_id"})
    assert post(base | {"variables": {"order_no": "1"}}) == (422, {"field": "variables.order_no"})
    assert post(base | {"channel_account_ids": [account.id + 999]}) == (422, {"field": "channel_account_ids.0"})
    assert post(base | {"idempotency_key": " "}) == (422, {"field": "idempotency_key"})
    assert post(base, token=reader)[0] == 403
    assert db.scalars(select(Delivery)).all() == []


def test_a_failed_transactional_send_gives_back_no_marketing_slot(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a customer at a daily cap of 1 after a marketing send, then a transactional send
    from siyu.campaigns.broadcasts.service import submit_broadcast
    from siyu.messaging.adapters.base import StatusReport
    from siyu.messaging.callbacks import record_status
    from siyu.messaging.transactional import send_transactional
    from siyu.models import TouchState
    from tests.messaging.factories import make_broadcast
    from tests.segments.factories import make_segment

    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    customer = make_customer(db, actor=actor, clock=clock, name="王芳").customer
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 1}})
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock)
    segment = make_segment(db, workspace=workspace, clock=clock, members=[customer.id])
    broadcast = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item]
    )
    submit_broadcast(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
    notice = make_content(db, workspace=workspace, clock=clock, body="您的订单已发货", is_marketing=False)
    send_transactional(
        db,
        actor=actor,
        customer_id=customer.id,
        content_id=notice.id,
        channel_account_ids=[account.id],
        idempotency_key="ship-1",
        variables={},
        clock=clock,
    )
    db.commit()
    dispatch(database, clock)
    db.expire_all()
    shipped = db.scalars(select(Delivery).where(Delivery.source == "transactional")).one()
    # when the provider reports the transactional message failed
    assert (
        record_status(
            db,
            account=account,
            reports=[StatusReport(provider_message_id=str(shipped.provider_message_id), status="failed")],
            clock=clock,
        )
        == 1
    )
    # then the marketing send still holds its slot
    assert db.get(TouchState, customer.id).counts["d2026-11-23"] == {"all": 1}  # type: ignore[union-attr]
