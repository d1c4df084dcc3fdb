"""The app over the test's rolled-back transaction, and a phone that opens a member link."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.h5.links import member_link_token

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False, headers={"accept-language": "zh-CN,zh;q=0.9"}) as c:
        yield c


def link_for(workspace_id: int, customer_id: int, clock: FrozenClock, purpose: str = "home") -> str:
    token = member_link_token(
        workspace_id=workspace_id, customer_id=customer_id, secret="test-secret", clock=clock, purpose=purpose
    )
    return f"/m/enter?t={token}"


def sign_in(client: TestClient, workspace_id: int, customer_id: int, clock: FrozenClock) -> None:
    """Open the member's link on this client (the session cookie stays on it)."""
    response = client.get(link_for(workspace_id, customer_id, clock))
    assert response.status_code == 303, response.text


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no form with a CSRF token"
    return match.group(1)
