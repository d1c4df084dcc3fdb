"""`POST /api/v1/members/{customer_id}/h5-link`, the service behind it, and `siyu member link`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.app import create_app
from siyu.config import Settings
from siyu.customers.errors import CustomerNotFound
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.h5.service import issue_member_link
from siyu.models import AuditEntry, Role
from tests.factories import actor_for, make_customer, make_staff, make_token, make_workspace
from tests.loyalty.h5.factories import make_loyalty, make_member

PATH = "/api/v1/members/{customer_id}/h5-link"


@pytest.fixture
def api(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def test_an_operator_gets_a_link_that_opens_the_members_page(db: Session, clock: FrozenClock, api: TestClient) -> None:
    # given a member with 80 points and a token with loyalty:write
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock, points=80)
    token = make_token(db, clock=clock, workspace=setup.workspace, scopes=["loyalty:write"])
    db.commit()
    # when a link to the rewards mall is requested
    response = api.post(
        PATH.format(customer_id=customer.id), json={"purpose": "rewards"}, headers={"Authorization": f"Bearer {token}"}
    )
    # then it is a 30-day link that lands on the mall, and its issue is audited
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["customer_id"] == customer.id and body["purpose"] == "rewards"
    assert body["expires_at"] == "2026-12-23T02:00:00Z"
    url = urlsplit(body["url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "127.0.0.1:8000", "/m/enter")
    opened = api.get(f"{url.path}?{url.query}")
    assert opened.status_code == 303 and opened.headers["location"] == "/m/rewards"
    assert 'data-testid="points-balance">80<' in api.get("/m/rewards").text
    audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "member_link")).one()
    assert (audit.entity_type, audit.entity_id) == ("customer", str(customer.id))
    assert audit.after == {"purpose": "rewards", "expires_at": "2026-12-23T02:00:00+00:00"}


def test_without_loyalty_write_nothing_is_issued(db: Session, clock: FrozenClock, api: TestClient) -> None:
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock)
    token = make_token(db, clock=clock, workspace=setup.workspace, scopes=["loyalty:read", "customers:read"])
    db.commit()
    response = api.post(PATH.format(customer_id=customer.id), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "member_link")).all() == []


def test_bad_input_is_refused_naming_it(db: Session, clock: FrozenClock, api: TestClient) -> None:
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock)
    other = make_workspace(db, clock=clock)
    stranger = make_customer(db, actor=actor_for(other), clock=clock).customer
    token = make_token(db, clock=clock, workspace=setup.workspace, scopes=["loyalty:write"])
    db.commit()
    auth = {"Authorization": f"Bearer {token}"}
    bad_purpose = api.post(PATH.format(customer_id=customer.id), json={"purpose": "admin"}, headers=auth)
    assert bad_purpose.status_code == 422 and bad_purpose.json()["error"]["details"][0]["field"] == "purpose"
    assert api.post(PATH.format(customer_id=stranger.id), headers=auth).status_code == 404
    assert api.post(PATH.format(customer_id=0), headers=auth).status_code == 422
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "member_link")).all() == []


def test_staff_get_links_only_for_their_own_customers(db: Session, clock: FrozenClock, settings: Settings) -> None:
    ws = make_workspace(db, clock=clock)
    mine_staff = make_staff(db, workspace=ws, clock=clock)
    other_staff = make_staff(db, workspace=ws, clock=clock)
    admin = actor_for(ws)
    mine = make_customer(db, actor=admin, clock=clock, owner_staff_id=mine_staff.id).customer
    theirs = make_customer(db, actor=admin, clock=clock, owner_staff_id=other_staff.id).customer
    staff = actor_for(ws, role=Role.STAFF, staff_id=mine_staff.id)
    issued = issue_member_link(db, actor=staff, customer_id=mine.id, purpose="home", settings=settings, clock=clock)
    assert issued.customer_id == mine.id
    with pytest.raises(CustomerNotFound):
        issue_member_link(db, actor=staff, customer_id=theirs.id, purpose="home", settings=settings, clock=clock)


def test_the_cli_prints_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from siyu.cli import app
    from siyu.config import get_settings
    from siyu.db import set_database

    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_SECRET_KEY", "cli-secret")
    monkeypatch.setenv("SIYU_PUBLIC_URL", "https://vip.brand.example")
    get_settings.cache_clear()
    set_database(None)
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["migrate"]).exit_code == 0
        from siyu.db import get_database
        from siyu.kit.clock import system_clock
        from siyu.workspaces.service import ensure_default_workspace

        with get_database().transaction() as session:
            ws = ensure_default_workspace(session, clock=system_clock)
            customer_id = make_customer(session, actor=actor_for(ws), clock=system_clock, name="王芳").customer.id
        printed = runner.invoke(app, ["member", "link", str(customer_id), "--purpose", "check_in"])
        assert printed.exit_code == 0, printed.output
        assert printed.stdout.startswith("https://vip.brand.example/m/enter?t=")
        unknown = runner.invoke(app, ["member", "link", "999999"])
        assert unknown.exit_code == 2 and "customer 999999 not found" in unknown.output
        bad = runner.invoke(app, ["member", "link", str(customer_id), "--purpose", "admin"])
        assert bad.exit_code == 2 and "unknown link purpose" in bad.output
    finally:
        set_database(None)
        get_settings.cache_clear()
