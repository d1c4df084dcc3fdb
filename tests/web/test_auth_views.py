"""Signing in and out, CSRF, roles on admin pages, workspaces and the language switch."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Membership, Role, TagGroup, User, Workspace
from tests.factories import make_user, make_workspace
from tests.web.conftest import PASSWORD, csrf_of, login


def test_login_with_the_right_password_enters_the_workspace_and_is_audited(
    client: TestClient, db: Session, user_with_role: Callable[..., User], workspace: Workspace
) -> None:
    user = user_with_role(Role.OPERATOR)
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": user.email.upper(), "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/tags"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/tags"
    home = client.get("/")
    assert home.status_code == 200
    assert "花间集" in home.text
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "login")).all()
    assert [(e.entity_type, e.entity_id, e.workspace_id) for e in entries] == [("user", str(user.id), workspace.id)]


def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: TestClient, user_with_role: Callable[..., User]
) -> None:
    user = user_with_role()
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"email": user.email, "password": "nope-nope-1", "csrf_token": token})
    unknown = client.post("/login", data={"email": "who@example.com", "password": PASSWORD, "csrf_token": token})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "邮箱或密码错误" in response.text
        assert 'name="password"' in response.text
    assert client.get("/").status_code == 303  # still signed out


def test_pages_redirect_to_login_when_signed_out(client: TestClient) -> None:
    response = client.get("/customers")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/customers"


def test_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, db: Session, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role().email)
    missing = client.post("/tags/groups", data={"name": "肤质"})
    wrong = client.post("/tags/groups", data={"name": "肤质", "csrf_token": "forged"})
    for response in (missing, wrong):
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
    assert db.scalar(select(func.count(TagGroup.id))) == 0


def test_csrf_header_is_accepted_like_the_form_field(
    client: TestClient, db: Session, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role().email)
    response = client.post("/tags/groups", data={"name": "肤质"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 303
    assert db.scalars(select(TagGroup.name)).all() == ["肤质"]


def test_admin_pages_are_forbidden_for_an_operator(client: TestClient, user_with_role: Callable[..., User]) -> None:
    login(client, user_with_role(Role.OPERATOR).email)
    for url in ("/settings/users", "/settings/tokens", "/audit"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.headers["content-type"].startswith("text/html")
        assert "没有权限" in response.text
    home = client.get("/").text
    assert 'href="/settings/users"' not in home
    assert 'href="/audit"' not in home


def test_english_switch_translates_the_navigation(client: TestClient, user_with_role: Callable[..., User]) -> None:
    token = login(client, user_with_role().email)
    assert ">客户<" in client.get("/").text
    response = client.post("/locale", data={"locale": "en", "next": "/customers", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/customers"
    page = client.get("/").text
    assert ">Customers<" in page
    assert ">客户<" not in page
    assert ">KPI planner<" in page  # the measure section of the navigation
    assert '<html lang="en">' in page


def test_logout_ends_the_session(client: TestClient, user_with_role: Callable[..., User]) -> None:
    token = login(client, user_with_role().email)
    assert client.post("/logout", data={"csrf_token": token}).headers["location"] == "/login"
    assert client.get("/").status_code == 303


def test_switching_workspace_only_to_ones_with_a_membership(
    client: TestClient, db: Session, clock: FrozenClock, user_with_role: Callable[..., User]
) -> None:
    user = user_with_role()
    other = make_workspace(db, clock=clock, name="二号品牌")
    foreign = make_workspace(db, clock=clock, name="别人的品牌")
    db.add(Membership(user_id=user.id, workspace_id=other.id, role=Role.ANALYST, created_at=clock.now()))
    db.commit()
    token = login(client, user.email)
    page = client.get("/").text
    assert 'action="/workspaces/switch"' in page
    refused = client.post("/workspaces/switch", data={"workspace_id": str(foreign.id), "csrf_token": token})
    assert refused.status_code == 403
    moved = client.post("/workspaces/switch", data={"workspace_id": str(other.id), "csrf_token": token})
    assert moved.status_code == 303
    page = client.get("/").text
    assert f'<option value="{other.id}" selected>二号品牌</option>' in page
    assert client.get("/tags").status_code == 200
    assert client.get("/settings/users").status_code == 403  # analyst there


def test_admin_creates_a_user_and_a_token(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role().email)
    created = client.post(
        "/settings/users",
        data={
            "email": "li@example.com",
            "name": "小李",
            "password": "long-enough-1",
            "role": "analyst",
            "csrf_token": token,
        },
    )
    assert created.status_code == 303
    page = client.get("/settings/users").text
    assert "li@example.com" in page
    bad = client.post(
        "/settings/users",
        data={
            "email": "wang@example.com",
            "name": "小王",
            "password": "long-enough-1",
            "role": "staff",
            "csrf_token": token,
        },
    )
    assert bad.status_code == 422
    assert "role staff needs a staff member" in bad.text
    assert db.scalar(select(User.id).where(User.email == "wang@example.com")) is None
    issued = client.post(
        "/settings/tokens", data={"name": "ERP", "scopes": ["customers:read", "customers:write"], "csrf_token": token}
    )
    assert issued.status_code == 201
    assert 'id="token-secret"' in issued.text
    assert "siyu_" in issued.text
    assert "siyu_" not in client.get("/settings/tokens").text.split('id="tokens"')[0]


def test_user_without_membership_cannot_sign_in(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    user = make_user(db, clock=clock, workspace=ws, password=PASSWORD)
    db.execute(Membership.__table__.delete().where(Membership.user_id == user.id))
    db.commit()
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 403
