"""Signed member H5 links: a valid one signs in, an expired, tampered or foreign one is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.h5.links import COOKIE_NAME, member_link_token
from tests.factories import make_token
from tests.loyalty.h5.factories import make_loyalty, make_member

LINK_DAYS = 2


@pytest.fixture
def phone(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(
        settings.model_copy(update={"member_link_days": LINK_DAYS}), database=database, clock=clock, run_worker=False
    )
    with TestClient(app, follow_redirects=False) as client:
        yield client


def _issue(phone: TestClient, db: Session, clock: FrozenClock) -> tuple[str, int, int]:
    """A link issued through the API, as the console and integrations get it; (token, customer, other customer)."""
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock, points=50)
    other, _other_member = make_member(db, workspace=setup.workspace, clock=clock, name="李雷")
    token = make_token(db, clock=clock, workspace=setup.workspace, scopes=["loyalty:write"])
    db.commit()
    issued = phone.post(f"/api/v1/members/{customer.id}/h5-link", headers={"authorization": f"Bearer {token}"})
    assert issued.status_code == 201, issued.text
    assert issued.json()["expires_at"] == (clock.now() + timedelta(days=LINK_DAYS)).isoformat().replace("+00:00", "Z")
    return parse_qs(urlsplit(issued.json()["url"]).query)["t"][0], customer.id, other.id


def _enter(phone: TestClient, token: str) -> int:
    status = phone.get("/m/enter", params={"t": token}).status_code
    return int(status)


def test_a_valid_link_signs_the_member_in_until_it_expires(phone: TestClient, db: Session, clock: FrozenClock) -> None:
    token, _customer, _other = _issue(phone, db, clock)
    # valid at the last second of its lifetime
    clock.advance(timedelta(days=LINK_DAYS))
    entered = phone.get("/m/enter", params={"t": token})
    assert entered.status_code == 303
    assert entered.headers["set-cookie"].startswith(f"{COOKIE_NAME}=")
    assert phone.get("/m/").status_code == 200
    # one second later the link is gone (410) and the session it opened has run out too
    clock.advance(timedelta(seconds=1))
    assert _enter(phone, token) == 410
    clock.advance(timedelta(days=LINK_DAYS))
    assert phone.get("/m/").status_code == 401


def _changed_first_character(part: str) -> str:
    """`part` (unpadded base64) with its first character changed. Not the last one: that character
    also holds padding bits, and changing only those decodes to the same bytes, a link still valid."""
    return ("B" if part[0] == "A" else "A") + part[1:]


def test_a_tampered_or_foreign_link_is_refused(phone: TestClient, db: Session, clock: FrozenClock) -> None:
    token, customer_id, other_id = _issue(phone, db, clock)
    payload, stamp, signature = token.split(".")
    # another member's id with the original signature
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims == {"w": claims["w"], "c": customer_id}
    swapped = base64.urlsafe_b64encode(json.dumps({"w": claims["w"], "c": other_id}).encode()).rstrip(b"=").decode()
    # a changed signature, a re-dated timestamp, a link signed with another installation's key
    flipped = _changed_first_character(signature)
    forged = member_link_token(workspace_id=claims["w"], customer_id=other_id, secret="someone-else", clock=clock)
    refused = {
        "swapped member": _enter(phone, f"{swapped}.{stamp}.{signature}"),
        "signature": _enter(phone, f"{payload}.{stamp}.{flipped}"),
        "timestamp": _enter(phone, f"{payload}.{_changed_first_character(stamp)}.{signature}"),
        "foreign key": _enter(phone, forged),
        "missing": _enter(phone, ""),
    }
    assert refused == dict.fromkeys(refused, 404)
    # nothing was opened by any of them, and the genuine link still works
    assert phone.get("/m/").status_code == 401
    assert _enter(phone, token) == 303
