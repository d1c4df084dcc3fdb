"""Unsubscribe links: signed per delivery, confirm on GET, withdraw consent on POST, once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.campaigns.broadcasts.service import submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.messaging.unsubscribe import read_token, unsubscribe_token
from siyu.models import Consent, Delivery, Unsubscribe
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content
from tests.segments.factories import make_segment


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=database, clock=clock, run_worker=False)) as c:
        yield c


def test_a_sent_message_carries_a_link_that_unsubscribes_its_channel_once(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given an SMS-like message sent to 王芳 with {{ unsubscribe_url }} in it
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    customer = make_customer(db, actor=actor, clock=clock, name="王芳").customer
    segment = make_segment(db, workspace=workspace, clock=clock, members=[customer.id])
    account = make_account(db, workspace=workspace, clock=clock, settings={"consent_channel": "sms"})
    item = make_content(db, workspace=workspace, clock=clock, body="{{ name }}，退订点 {{ unsubscribe_url }}")
    broadcast = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item]
    )
    submit_broadcast(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
    db.commit()
    dispatch(database, clock)
    delivery = db.scalars(select(Delivery).where(Delivery.customer_id == customer.id)).one()
    token = unsubscribe_token(delivery.id, "test-secret")
    assert delivery.message is not None
    assert delivery.message["text"] == f"王芳，退订点 http://127.0.0.1:8000/u/{token}"
    # when the link is opened (GET: only a confirmation) and then confirmed twice
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and "确认退订" in page.text
    assert db.scalars(select(Consent)).all() == []
    assert client.post(f"/u/{token}").status_code == 200
    assert client.post(f"/u/{token}").status_code == 200
    # then SMS consent is withdrawn, once, and the delivery remembers it
    db.expire_all()
    consent = db.scalars(select(Consent).where(Consent.customer_id == customer.id)).one()
    assert (consent.channel, consent.status, consent.source) == ("sms", "unsubscribed", "unsubscribe_link")
    assert len(db.scalars(select(Unsubscribe)).all()) == 1
    assert db.get(Delivery, delivery.id).unsubscribed_at == clock.now()  # type: ignore[union-attr]


def test_a_forged_token_is_a_404_and_changes_nothing(client: TestClient, db: Session) -> None:
    forged = unsubscribe_token(1, "another-secret")
    assert client.get(f"/u/{forged}").status_code == 404
    assert client.post(f"/u/{forged}").status_code == 404
    assert client.post("/u/not-a-token").status_code == 404
    assert db.scalars(select(Unsubscribe)).all() == []


def test_tokens_round_trip_and_refuse_other_payloads() -> None:
    assert read_token(unsubscribe_token(42, "s"), "s") == 42
    from itsdangerous import URLSafeSerializer

    with pytest.raises(Exception, match="unknown unsubscribe link"):
        read_token(URLSafeSerializer("s", salt="siyu-unsubscribe").dumps("42"), "s")


def test_a_channel_without_consent_says_it_cannot_unsubscribe(
    db: Session, database: Database, clock: FrozenClock, client: TestClient
) -> None:
    # given a message on a sandbox that simulates no consent channel
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    customer = make_customer(db, actor=actor, clock=clock, name="王芳").customer
    segment = make_segment(db, workspace=workspace, clock=clock, members=[customer.id])
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock, body="{{ name }}，新品到了")
    broadcast = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item]
    )
    submit_broadcast(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
    db.commit()
    dispatch(database, clock)
    delivery = db.scalars(select(Delivery).where(Delivery.customer_id == customer.id)).one()
    # then the message carries no unsubscribe link, and a forged-but-signed one is answered truthfully
    assert delivery.message is not None and "unsubscribe_url" not in delivery.message
    response = client.post(f"/u/{unsubscribe_token(delivery.id, 'test-secret')}")
    assert response.status_code == 409 and "无法在线退订" in response.text
    assert db.scalars(select(Unsubscribe)).all() == []
