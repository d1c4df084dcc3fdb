"""The signed webhook adapter against a local HTTP endpoint that verifies the signature."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters import adapter_for
from siyu.messaging.adapters.base import Outcome, OutcomeKind
from siyu.messaging.adapters.webhook import sign
from siyu.models import AdapterKind, ChannelAccount, Delivery, Workspace
from tests.factories import make_workspace
from tests.messaging.adapters.fakes import FakeServer, Reply, fake_server
from tests.messaging.adapters.fakes import Request as HttpRequest
from tests.messaging.adapters.helpers import BACKOFF, Attempt, context, outgoing, queue, send_until_done
from tests.messaging.factories import make_account, make_content

CREDENTIALS = {"secret": "whsec_test"}
NOW_TS = "1795399200"  # 2026-11-23T02:00:00Z, the frozen clock


class Receiver:
    """The operator's endpoint: rejects bad signatures with 401, otherwise answers from `replies`."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.replies: list[Reply] = []
        server.route("POST", "/hooks/siyu", self.receive)

    @property
    def settings(self) -> dict[str, object]:
        return {"url": f"{self.server.url}/hooks/siyu", "timeout_s": 0.5}

    def receive(self, request: HttpRequest) -> Reply:
        timestamp = request.headers.get("x-siyu-timestamp", "")
        if request.headers.get("x-siyu-signature") != sign(CREDENTIALS["secret"], timestamp, request.body):
            return Reply(401, {"error": "bad signature"})
        return self.replies.pop(0) if self.replies else Reply(200, {"id": "evt_1"})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with fake_server() as server:
        yield Receiver(server)


def _setup(db: Session, clock: FrozenClock, receiver: Receiver) -> tuple[Workspace, ChannelAccount]:
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.WEBHOOK,
        settings=receiver.settings,
        credentials=CREDENTIALS,
    )
    return workspace, account


def test_each_message_is_one_signed_post(db: Session, clock: FrozenClock, receiver: Receiver) -> None:
    # given an endpoint that answers the first with an id and the second with an empty 202
    _, account = _setup(db, clock, receiver)
    receiver.replies = [Reply(200, {"id": "evt_1"}), Reply(202, None)]
    batch = [outgoing(7, "wf@example.com", "您好"), outgoing(8, None, "早安")]
    # when they are sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then each was a signed JSON POST, and the provider id is the answer's id or the idempotency key
    assert outcomes == [
        Outcome(7, OutcomeKind.SENT, provider_message_id="evt_1"),
        Outcome(8, OutcomeKind.SENT, provider_message_id="siyu-delivery-8"),
    ]
    first = receiver.server.requests[0]
    assert first.json() == {
        "delivery_id": 7,
        "idempotency_key": "siyu-delivery-7",
        "customer_id": 7,
        "address": "wf@example.com",
        "message": {"kind": "text", "text": "您好"},
    }
    assert (first.headers["x-siyu-timestamp"], first.headers["idempotency-key"]) == (NOW_TS, "siyu-delivery-7")
    assert first.headers["x-siyu-signature"] == sign("whsec_test", NOW_TS, first.body)
    assert first.headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(503, None), (OutcomeKind.RETRY, "http_503")),
        (Reply(429, None), (OutcomeKind.RETRY, "http_429")),
        (Reply(408, None), (OutcomeKind.RETRY, "http_408")),
        (Reply(200, {}, delay_s=1.5), (OutcomeKind.RETRY, "timeout")),
        (Reply(422, {"error": "unknown customer"}), (OutcomeKind.FAILED, "http_422")),
    ],
)
def test_answers_map_to_retry_or_failure(
    db: Session, clock: FrozenClock, receiver: Receiver, reply: Reply, expected: tuple[OutcomeKind, str]
) -> None:
    # given the endpoint answering with an error or too slowly
    _, account = _setup(db, clock, receiver)
    receiver.replies = [reply]
    # when a message is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), [outgoing(1, "a@example.com")])
    # then it is mapped
    assert [(o.kind, o.reason) for o in outcomes] == [expected]


def test_a_closed_port_is_retried(db: Session, clock: FrozenClock) -> None:
    # given a URL nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db, workspace=workspace, clock=clock, kind=AdapterKind.WEBHOOK, settings={"url": f"http://127.0.0.1:{port}/x"}
    )
    # when a message is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), [outgoing(1, None)])
    # then it waits for a retry
    assert [(o.kind, o.reason) for o in outcomes] == [(OutcomeKind.RETRY, "connection_error")]


def test_a_wrong_secret_is_refused_by_the_endpoint(db: Session, clock: FrozenClock, receiver: Receiver) -> None:
    # given the account signing with a secret the endpoint does not know
    _, account = _setup(db, clock, receiver)
    # when sent, the endpoint's 401 is a permanent failure
    outcomes = adapter_for(account).send(context(account, clock, {"secret": "other"}), [outgoing(1, None)])
    assert [(o.kind, o.reason) for o in outcomes] == [(OutcomeKind.FAILED, "http_401")]


def test_check_names_the_bad_field(db: Session, clock: FrozenClock, receiver: Receiver) -> None:
    # given an account with an ftp URL and one without a secret
    workspace = make_workspace(db, clock=clock)
    ftp = make_account(db, workspace=workspace, clock=clock, kind=AdapterKind.WEBHOOK, settings={"url": "ftp://x"})
    _, account = _setup(db, clock, receiver)
    # when they are checked
    with pytest.raises(InvalidInput) as bad_url:
        adapter_for(ftp).check(context(ftp, clock, CREDENTIALS))
    with pytest.raises(InvalidInput) as no_secret:
        adapter_for(account).check(context(account, clock, {}))
    # then each names its field
    assert bad_url.value.details == {"field": "settings.url"}
    assert no_secret.value.details == {"field": "credentials.secret"}


def test_send_due_posts_the_rendered_message(
    db: Session, database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    # given a queued delivery
    workspace, account = _setup(db, clock, receiver)
    item = make_content(db, workspace=workspace, clock=clock)
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "crm-001")]
    )
    # when the sender runs
    history = send_until_done(db, database, clock, delivery.id)
    # then the endpoint got the rendered text and the answer's id is kept
    assert history == [Attempt("sent", None, 1, None)]
    body = json.loads(receiver.server.requests[0].body)
    assert (body["address"], body["message"]["text"]) == ("crm-001", "王芳，双十一会员专享礼已到账")
    row = db.get(Delivery, delivery.id)
    assert row is not None and row.provider_message_id == "evt_1"


def test_send_due_retries_with_backoff_then_fails(
    db: Session, database: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    # given an endpoint answering 502 every time
    workspace, account = _setup(db, clock, receiver)
    item = make_content(db, workspace=workspace, clock=clock)
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "crm-001")]
    )
    receiver.replies = [Reply(502, None) for _ in range(5)]
    # when the sender runs until the delivery leaves the queue
    history = send_until_done(db, database, clock, delivery.id)
    # then five tries with growing waits, each signed with its own time, then failed
    assert history == [
        *(Attempt("queued", "http_502", n + 1, wait) for n, wait in enumerate(BACKOFF)),
        Attempt("failed", "http_502", 5, None),
    ]
    stamps = [int(r.headers["x-siyu-timestamp"]) - int(NOW_TS) for r in receiver.server.requests]
    assert stamps == [0, 30, 150, 630, 2550]
