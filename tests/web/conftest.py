"""Console fixtures: the app over the test's rolled-back transaction, a browser-like client, logins."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Role, User, Workspace
from tests.factories import make_user, make_workspace

PASSWORD = "correct-horse-1"
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_of(html: str) -> str:
    """The CSRF token a console page carries in its <meta>."""
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def app(settings: Settings, database: Database, clock: FrozenClock) -> FastAPI:
    return create_app(settings, database=database, clock=clock, run_worker=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c


def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_of(page.text)})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


@pytest.fixture
def workspace(db: Session, clock: FrozenClock) -> Workspace:
    ws = make_workspace(db, clock=clock, name="花间集")
    db.commit()
    return ws


@pytest.fixture
def user_with_role(db: Session, clock: FrozenClock, workspace: Workspace) -> Callable[..., User]:
    def make(role: Role = Role.ADMIN, **kwargs: int | None) -> User:
        user = make_user(db, clock=clock, workspace=workspace, role=role, password=PASSWORD, **kwargs)  # type: ignore[arg-type]
        db.commit()
        return user

    return make
