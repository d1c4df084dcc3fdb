"""The messaging API end to end: channel accounts (secrets never returned), the content library,
the delivery policy, the outbox and a customer's deliveries; roles, and bad input that writes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Actor
from siyu.kit.clock import FrozenClock
from siyu.kit.ids import MAX_ID
from siyu.models import (
    AuditEntry,
    ChannelAccount,
    ContentItem,
    Delivery,
    Role,
    SandboxMessage,
    TouchPolicy,
    Workspace,
)
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_customer, make_token, make_workspace
from tests.messaging.factories import make_account, make_content

app = api_fixtures.app
client = api_fixtures.client

SECRET = "TOP-SECRET-41"


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role | None = None) -> dict[str, str]:
    scopes = sorted(str(s) for s in ROLE_SCOPES[role]) if role is not None else None
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return bearer(token)


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _no_secret(body: Any) -> None:
    """No response may carry credentials: neither the key nor the secret value."""
    text = json.dumps(body)
    assert SECRET not in text
    items = body if isinstance(body, list) else [body]
    for item in items:
        if isinstance(item, dict):
            assert "credentials" not in item and "credentials_encrypted" not in item


# --- channel accounts -------------------------------------------------------------------------------


def test_accounts_crud_never_returns_credentials(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    # given an admin token
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws, Role.ADMIN)
    # when an account is created with credentials, read, listed, renamed keeping them, and tested
    body = {"name": "短信沙箱", "kind": "sandbox", "settings": {"consent_channel": "sms"}, "credentials": {"k": SECRET}}
    created = client.post("/api/v1/channel-accounts", headers=headers, json=body)
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    one = client.get(f"/api/v1/channel-accounts/{account_id}", headers=headers)
    listed = client.get("/api/v1/channel-accounts", headers=headers)
    renamed = client.patch(
        f"/api/v1/channel-accounts/{account_id}", headers=headers, json={"name": "短信", "kind": "sandbox"}
    )
    tested = client.post(f"/api/v1/channel-accounts/{account_id}/test", headers=headers)
    # then no answer carries the secret, only that there is one
    for response in (created, one, listed, renamed, tested):
        assert response.status_code in (200, 201), response.text
        _no_secret(response.json())
    assert created.json()["has_credentials"] is True
    assert renamed.json() | {"updated_at": None, "created_at": None} == {
        "id": account_id,
        "name": "短信",
        "kind": "sandbox",
        "settings": {},
        "has_credentials": True,
        "is_active": True,
        "last_error": None,
        "created_at": None,
        "updated_at": None,
    }
    assert [a["id"] for a in listed.json()] == [account_id]
    # and the audit trail holds no secret either
    audits = db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "channel_account")).all()
    assert [a.action for a in audits] == ["create", "update", "test"]
    assert all(SECRET not in json.dumps([a.before, a.after]) for a in audits)


def test_a_failed_test_is_a_422_and_the_error_is_kept(
    db: Session, database: object, clock: FrozenClock, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a sandbox account whose check fails
    ws = make_workspace(db, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    headers = _headers(db, clock, ws, Role.ADMIN)

    def failing(self: object, context: object) -> None:
        raise ConnectionError("smtp.example.com refused the connection")

    monkeypatch.setattr("siyu.messaging.adapters.sandbox.SandboxAdapter.check", failing)
    # when it is tested
    response = client.post(f"/api/v1/channel-accounts/{account.id}/test", headers=headers)
    # then the answer is a 422 with the message, and the account keeps it as last_error
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "ConnectionError: smtp.example.com refused the connection"
    shown = client.get(f"/api/v1/channel-accounts/{account.id}", headers=headers).json()
    assert shown["last_error"] == "ConnectionError: smtp.example.com refused the connection"


def test_account_name_conflict_and_bad_input_write_nothing(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    # given an account named 沙箱
    ws = make_workspace(db, clock=clock)
    make_account(db, workspace=ws, clock=clock, name="沙箱")
    headers = _headers(db, clock, ws, Role.ADMIN)
    # when the name is reused, and bad bodies are sent
    taken = client.post("/api/v1/channel-accounts", headers=headers, json={"name": "沙箱", "kind": "sandbox"})
    bad = [
        client.post("/api/v1/channel-accounts", headers=headers, json=body)
        for body in (
            {"name": "a", "kind": "pigeon"},
            {"name": "a\x00b", "kind": "sandbox"},
            {"name": 12, "kind": "sandbox"},
            {"name": "a", "kind": "sandbox", "settings": "x"},
            {"name": "a", "kind": "sandbox", "settings": {"consent_channel": "fax"}},
            {"name": "   ", "kind": "sandbox"},
            {"name": "a", "kind": "sandbox", "credentials": {"k": "x" * 9000}},
        )
    ]
    # then: 409 naming the name, 422 for each bad body naming its field, and only the first account exists
    assert taken.status_code == 409 and taken.json()["error"]["details"] == {"field": "name"}
    assert [r.status_code for r in bad] == [422] * 7
    assert bad[6].json()["error"]["details"][0]["field"] == "credentials"
    assert [r.json()["error"]["details"][0]["field"] for r in bad[:4]] == ["kind", "body", "name", "settings"]
    assert "name contains a NUL character" in bad[1].json()["error"]["message"] + str(bad[1].json()["error"])
    assert bad[4].json()["error"]["details"] == {"field": "settings"}
    assert _count(db, ChannelAccount) == 1
    # and ids out of range are refused before the database
    assert client.get(f"/api/v1/channel-accounts/{MAX_ID + 1}", headers=headers).status_code == 422
    assert client.get("/api/v1/channel-accounts/999999", headers=headers).status_code == 404


ROLE_MATRIX = [
    # role, reads (accounts, content, policy, outbox), content write, channels (account, policy), deliveries
    (Role.ADMIN, 200, 201, 201, 200),
    (Role.OPERATOR, 200, 201, 403, 200),
    (Role.ANALYST, 200, 403, 403, 200),
    (Role.STORE_MANAGER, 403, 403, 403, 200),
    (Role.STAFF, 403, 403, 403, 200),
]


@pytest.mark.parametrize(("role", "read", "write", "channels", "deliveries"), ROLE_MATRIX)
def test_role_matrix(
    db: Session,
    database: object,
    clock: FrozenClock,
    client: TestClient,
    role: Role,
    read: int,
    write: int,
    channels: int,
    deliveries: int,
) -> None:
    # given a token with the scopes of `role`, an account with credentials and a customer
    ws = make_workspace(db, clock=clock)
    make_account(db, workspace=ws, clock=clock, credentials={"k": SECRET})
    customer = make_customer(db, actor=Actor.system(ws.id), clock=clock).customer
    headers = _headers(db, clock, ws, role)
    # when it reads and writes each part
    reads = [
        client.get(path, headers=headers)
        for path in ("/api/v1/channel-accounts", "/api/v1/content", "/api/v1/touch-policy", "/api/v1/outbox")
    ]
    content = client.post("/api/v1/content", headers=headers, json={"name": "n", "body": "hi"})
    account = client.post("/api/v1/channel-accounts", headers=headers, json={"name": "new", "kind": "sandbox"})
    policy = client.put("/api/v1/touch-policy", headers=headers, json={"dedup_days": 1})
    history = client.get(f"/api/v1/customers/{customer.id}/deliveries", headers=headers)
    # then each answer matches the role, and no answer carries the secret
    assert [r.status_code for r in reads] == [read] * 4
    assert content.status_code == write
    assert (account.status_code, policy.status_code) == (channels, 200 if channels == 201 else 403)
    assert history.status_code == deliveries
    for response in (*reads, content, account, policy, history):
        _no_secret(response.json())


# --- content library ----------------------------------------------------------------------------------


def test_content_crud_preview_and_archive(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    # given an operator and a customer named 王芳
    ws = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=Actor.system(ws.id), clock=clock, name="王芳").customer
    headers = _headers(db, clock, ws, Role.OPERATOR)
    body = {
        "name": "双十一",
        "kind": "link",
        "title": "会员专享",
        "body": "{{ name }}，双十一会员专享：{{ link }}",
        "link_url": "https://shop.example.com/1111",
        "tags": ["大促"],
    }
    # when it is created, changed, listed by tag and text, previewed and archived
    created = client.post("/api/v1/content", headers=headers, json=body)
    assert created.status_code == 201, created.text
    content_id = created.json()["id"]
    changed = client.put(f"/api/v1/content/{content_id}", headers=headers, json=body | {"tags": ["大促", "会员"]})
    by_tag = client.get("/api/v1/content", headers=headers, params={"tag": "会员"})
    by_text = client.get("/api/v1/content", headers=headers, params={"q": "双十"})
    missing = client.get("/api/v1/content", headers=headers, params={"q": "春节"})
    tags = client.get("/api/v1/content/tags", headers=headers)
    preview = client.get(f"/api/v1/content/{content_id}/preview", headers=headers, params={"customer_id": customer.id})
    archived = client.post(f"/api/v1/content/{content_id}/archive", headers=headers)
    after = client.get("/api/v1/content", headers=headers)
    # then each step answers as expected
    assert changed.json()["tags"] == ["大促", "会员"]
    assert [i["id"] for i in by_tag.json()] == [content_id]
    assert [i["id"] for i in by_text.json()] == [content_id]
    assert missing.json() == []
    assert tags.json() == ["会员", "大促"]
    assert preview.json() == {
        "content_id": content_id,
        "customer_id": customer.id,
        "message": {
            "kind": "link",
            "text": "王芳，双十一会员专享：https://shop.example.com/1111",
            "title": "会员专享",
            "link": "https://shop.example.com/1111",
        },
    }
    assert archived.json()["archived_at"] is not None
    assert after.json() == []
    assert client.get(f"/api/v1/content/{content_id}", headers=headers).status_code == 200


def test_bad_content_is_a_422_naming_the_problem_and_writes_nothing(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    # given an operator
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws, Role.OPERATOR)
    # when content with an unknown variable, a NUL byte, a wrong type, an overlong name or a bad link is posted
    unknown = client.post("/api/v1/content", headers=headers, json={"name": "a", "body": "{{ nmae }}您好"})
    nul = client.post("/api/v1/content", headers=headers, json={"name": "a", "body": "您好\x00"})
    typed = client.post("/api/v1/content", headers=headers, json={"name": "a", "body": "x", "tags": "大促"})
    long = client.post("/api/v1/content", headers=headers, json={"name": "a" * 101, "body": "x"})
    link = client.post("/api/v1/content", headers=headers, json={"name": "a", "body": "x", "link_url": "file:///etc"})
    syntax = client.post("/api/v1/content", headers=headers, json={"name": "a", "body": "{{ name "})
    not_json = client.post("/api/v1/content", headers=headers | {"content-type": "application/json"}, content=b"{")
    # then each is a 422 naming what is wrong, and nothing was written
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"] == {"field": "body", "variable": "nmae"}
    assert "nmae" in unknown.json()["error"]["message"]
    assert [r.status_code for r in (nul, typed, long, link, syntax, not_json)] == [422] * 6
    assert typed.json()["error"]["details"][0]["field"] == "tags"
    assert long.json()["error"]["details"][0]["field"] == "name"
    assert link.json()["error"]["details"][0]["field"] == "link_url"
    assert syntax.json()["error"]["details"]["field"] == "body"
    assert _count(db, ContentItem) == 0
    assert client.get("/api/v1/content", headers=headers, params={"q": "a\x00"}).status_code == 422


def test_preview_of_an_unresolved_variable_or_an_unknown_customer(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    # given content greeting by name, a nameless customer and another workspace's customer
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    item = make_content(db, workspace=ws, clock=clock, body="{{ name }}您好")
    nameless = make_customer(db, actor=Actor.system(ws.id), clock=clock).customer
    foreign = make_customer(db, actor=Actor.system(other.id), clock=clock, name="外人").customer
    headers = _headers(db, clock, ws, Role.ANALYST)
    # when previewed for each, and without a customer
    unresolved = client.get(f"/api/v1/content/{item.id}/preview", headers=headers, params={"customer_id": nameless.id})
    hidden = client.get(f"/api/v1/content/{item.id}/preview", headers=headers, params={"customer_id": foreign.id})
    none = client.get(f"/api/v1/content/{item.id}/preview", headers=headers)
    # then: 422 naming the variable, 404, 422 naming customer_id
    assert unresolved.status_code == 422
    assert unresolved.json()["error"]["details"] == {"field": "customer_id", "variable": "name"}
    assert hidden.status_code == 404
    assert none.status_code == 422 and none.json()["error"]["details"][0]["field"] == "customer_id"


# --- delivery policy --------------------------------------------------------------------------------------


def test_policy_defaults_save_and_bad_caps(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    # given an admin and no saved policy
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws, Role.ADMIN)
    # when the policy is read, saved, and then saved with bad caps
    default = client.get("/api/v1/touch-policy", headers=headers)
    policy = {
        "caps": {"all": {"day": 1, "week": 4}, "sms_aliyun": {"month": 2}},
        "platform_caps": {"wecom_customer": {"month": 4}},
        "quiet_start": "22:00",
        "quiet_end": "08:00",
        "dedup_days": 5,
        "approval_threshold": 10,
        "moments_marketing_share": 20,
    }
    saved = client.put("/api/v1/touch-policy", headers=headers, json=policy)
    bad = [
        client.put("/api/v1/touch-policy", headers=headers, json=policy | change)
        for change in (
            {"caps": {"all": {"day": "two"}}},
            {"caps": {"pigeon": {"day": 1}}},
            {"caps": {"all": {"fortnight": 1}}},
            {"platform_caps": {"wecom_customer": {"month": 0}}},
            {"caps": [1, 2]},
            {"quiet_end": "24:00"},
            {"dedup_days": 365},
            {"quiet_start": "2\x001:00"},
        )
    ]
    reread = client.get("/api/v1/touch-policy", headers=headers)
    # then defaults first, then the saved policy, and every bad body a 422 naming its path, changing nothing
    assert default.json()["saved"] is False
    assert default.json()["caps"] == {"all": {"day": 2, "week": 5, "month": 12}}
    assert saved.status_code == 200, saved.text
    assert {k: saved.json()[k] for k in policy} == policy
    assert [r.status_code for r in bad] == [422] * 8
    assert [r.json()["error"]["details"][0]["field"] for r in bad[:7]] == [
        "caps.all.day",
        "caps.pigeon.[key]",
        "caps.all.fortnight.[key]",
        "platform_caps.wecom_customer.month",
        "caps",
        "quiet_end",
        "dedup_days",
    ]
    assert reread.json() == saved.json()
    assert _count(db, TouchPolicy) == 1


# --- outbox and deliveries ------------------------------------------------------------------------------------


def test_outbox_and_customer_deliveries(db: Session, database: object, clock: FrozenClock, client: TestClient) -> None:
    # given three sandbox messages to one customer
    ws = make_workspace(db, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    customer = make_customer(db, actor=Actor.system(ws.id), clock=clock).customer
    for n in range(3):
        delivery = Delivery(
            workspace_id=ws.id,
            source="broadcast",
            source_id=n + 1,
            step="",
            customer_id=customer.id,
            channel="sandbox",
            channel_account_id=account.id,
            status="sent",
            not_before=clock.now(),
            planned_at=clock.now() + timedelta(seconds=n),
            message={"text": f"第{n}条"},
        )
        db.add(delivery)
        db.flush()
        db.add(
            SandboxMessage(
                workspace_id=ws.id,
                delivery_id=delivery.id,
                customer_id=customer.id,
                channel_account_id=account.id,
                message={"text": f"第{n}条"},
                sent_at=clock.now(),
            )
        )
    db.flush()
    headers = _headers(db, clock, ws, Role.ANALYST)
    # when the outbox is paged two at a time and the customer's deliveries are read
    first = client.get("/api/v1/outbox", headers=headers, params={"limit": 2}).json()
    second = client.get("/api/v1/outbox", headers=headers, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    bad_cursor = client.get("/api/v1/outbox", headers=headers, params={"cursor": "!!"})
    history = client.get(f"/api/v1/customers/{customer.id}/deliveries", headers=headers, params={"limit": 2})
    # then newest first, each once; the customer's latest two deliveries; a bad cursor is a 422
    assert [m["message"]["text"] for m in first["items"] + second["items"]] == ["第2条", "第1条", "第0条"]
    assert second["next_cursor"] is None
    assert bad_cursor.status_code == 422 and bad_cursor.json()["error"]["details"] == {"field": "cursor"}
    assert [(d["source_id"], d["status"], d["message"]) for d in history.json()] == [
        (3, "sent", {"text": "第2条"}),
        (2, "sent", {"text": "第1条"}),
    ]
    assert client.get("/api/v1/customers/999999/deliveries", headers=headers).status_code == 404
