"""The touch console: channel accounts, delivery rules, content library, outbox and broadcasts."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.service import submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.messaging.crypto import decrypt_credentials
from siyu.models import (
    AdapterKind,
    Broadcast,
    BroadcastStatus,
    ChannelAccount,
    ContentItem,
    Customer,
    Role,
    TouchPolicy,
    User,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_staff
from tests.messaging.factories import make_account, make_broadcast, make_content, make_policy
from tests.segments.factories import make_consent, make_segment
from tests.web.conftest import login

Users = Callable[..., User]


def _customers(db: Session, workspace: Workspace, clock: FrozenClock, names: list[str]) -> list[Customer]:
    actor = actor_for(workspace)
    return [make_customer(db, actor=actor, clock=clock, name=name).customer for name in names]


def _seed(db: Session, workspace: Workspace, clock: FrozenClock) -> dict[str, int]:
    """A sandbox account, a content item, a static segment of two customers and a draft broadcast."""
    customers = _customers(db, workspace, clock, ["王芳", "李雷"])
    segment = make_segment(db, workspace=workspace, clock=clock, members=[c.id for c in customers], name="老客")
    account = make_account(db, workspace=workspace, clock=clock, name="沙箱")
    item = make_content(db, workspace=workspace, clock=clock, name="双11预告", tags=["双11"])
    broadcast = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item], name="双11"
    )
    db.commit()
    return {
        "segment": segment.id,
        "account": account.id,
        "content": item.id,
        "broadcast": broadcast.id,
        "customer": customers[0].id,
    }


def _pages(ids: dict[str, int]) -> list[str]:
    return [
        "/broadcasts",
        "/broadcasts/new",
        f"/broadcasts/{ids['broadcast']}",
        f"/broadcasts/{ids['broadcast']}/edit",
        "/content",
        "/content/new",
        f"/content/{ids['content']}/edit",
        "/channel-accounts",
        "/channel-accounts/new",
        f"/channel-accounts/{ids['account']}/edit",
        "/channel-accounts/policy",
        "/outbox",
    ]


def _count(db: Session, model: type) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


# --- permissions -------------------------------------------------------------------------------


def test_every_touch_page_renders_for_an_admin(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a workspace with one of everything
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.ADMIN).email)
    # when an admin opens each page, then each renders
    for path in _pages(ids):
        response = client.get(path)
        assert response.status_code == 200, path
    listing = client.get("/broadcasts").text
    assert f'data-broadcast="{ids["broadcast"]}"' in listing
    assert 'data-broadcast-status="draft">草稿<' in listing
    # and each renders in English too
    client.post("/locale", data={"locale": "en", "next": "/broadcasts", "csrf_token": csrf})
    for path in _pages(ids):
        response = client.get(path)
        assert response.status_code == 200, path
    assert 'data-broadcast-status="draft">Draft<' in client.get("/broadcasts").text
    assert "Delivery rules" in client.get("/channel-accounts/policy").text


def test_staff_without_touch_scopes_get_403_on_pages_and_posts(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a staff member (no touch scopes)
    ids = _seed(db, workspace, clock)
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    # when they open the pages or post, then everything is refused and nothing is written
    for path in _pages(ids):
        assert client.get(path).status_code == 403, path
    posts = {
        "/content": {"name": "偷偷的素材", "kind": "text", "body": "hi"},
        "/channel-accounts": {"name": "偷偷的渠道", "kind": "sandbox"},
        "/channel-accounts/policy": {"dedup_days": "1"},
        "/broadcasts": {"name": "偷偷的群发"},
        f"/broadcasts/{ids['broadcast']}/submit": {},
        f"/broadcasts/{ids['broadcast']}/cancel": {},
        f"/content/{ids['content']}/archive": {},
    }
    for path, data in posts.items():
        assert client.post(path, data=data | {"csrf_token": csrf}).status_code == 403, path
    assert (_count(db, ContentItem), _count(db, ChannelAccount), _count(db, Broadcast)) == (1, 1, 1)
    assert _count(db, TouchPolicy) == 0
    assert db.get(Broadcast, ids["broadcast"]).status == BroadcastStatus.DRAFT  # type: ignore[union-attr]
    assert db.get(ContentItem, ids["content"]).archived_at is None  # type: ignore[union-attr]


def test_an_analyst_reads_without_write_buttons_and_cannot_post(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an analyst (touch:read only)
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.ANALYST).email)
    # when they read the pages, then no write button shows
    assert 'id="new-broadcast"' not in client.get("/broadcasts").text
    assert 'id="submit-broadcast"' not in client.get(f"/broadcasts/{ids['broadcast']}").text
    assert 'id="new-content"' not in client.get("/content").text
    assert 'id="save-content"' not in client.get(f"/content/{ids['content']}/edit").text
    assert 'id="new-account"' not in client.get("/channel-accounts").text
    assert 'id="save-policy"' not in client.get("/channel-accounts/policy").text
    # and a post is refused anyway
    response = client.post("/content", data={"name": "x", "kind": "text", "body": "hi", "csrf_token": csrf})
    assert response.status_code == 403
    assert _count(db, ContentItem) == 1


def test_an_operator_may_write_content_but_not_channel_accounts_or_rules(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an operator (touch:write, no touch:channels, no touch:approve)
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # then the account pages read but offer no saving or testing, and posts are refused
    assert 'id="new-account"' not in client.get("/channel-accounts").text
    edit = client.get(f"/channel-accounts/{ids['account']}/edit").text
    assert 'id="save-account"' not in edit and 'id="test-account"' not in edit
    refused = client.post("/channel-accounts", data={"name": "新渠道", "kind": "sandbox", "csrf_token": csrf})
    assert refused.status_code == 403
    assert client.post(f"/channel-accounts/{ids['account']}/test", data={"csrf_token": csrf}).status_code == 403
    assert client.post("/channel-accounts/policy", data={"csrf_token": csrf}).status_code == 403
    assert _count(db, ChannelAccount) == 1
    # while content saves
    form = {"name": "会员日", "kind": "text", "body": "{{ name }} 好", "csrf_token": csrf}
    saved = client.post("/content", data=form)
    assert saved.status_code == 303
    assert _count(db, ContentItem) == 2


# --- channel accounts --------------------------------------------------------------------------


def test_credentials_are_stored_sealed_and_never_shown_again(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an admin creating an SMTP account with a password
    csrf = login(client, user_with_role(Role.ADMIN).email)
    form = {
        "name": "会员邮件",
        "kind": "email",
        "is_active": "1",
        "settings.email.host": "smtp.brand.example",
        "settings.email.port": "587",
        "settings.email.from_address": "花间集 <news@brand.example>",
        "settings.email.starttls": "1",
        "credentials.email.username": "news",
        "credentials.email.password": "s3cret-Pa55",
        "csrf_token": csrf,
    }
    response = client.post("/channel-accounts", data=form)
    assert response.status_code == 303
    account = db.scalars(select(ChannelAccount)).one()
    # then the settings are stored as typed and the credentials sealed
    assert account.kind == AdapterKind.EMAIL
    assert account.settings == {
        "host": "smtp.brand.example",
        "port": 587,
        "from_address": "花间集 <news@brand.example>",
        "starttls": True,
    }
    assert "s3cret" not in (account.credentials_encrypted or "")
    assert decrypt_credentials(account.credentials_encrypted) == {"username": "news", "password": "s3cret-Pa55"}
    # and the edit page never echoes them: empty password inputs with the "已保存" placeholder
    page = client.get(response.headers["location"]).text
    assert "s3cret-Pa55" not in page and 'value="news"' not in page
    assert 'name="credentials.email.password" value="" autocomplete="new-password" placeholder="已保存"' in page
    assert "s3cret-Pa55" not in client.get("/channel-accounts").text
    # when it is saved again with the credential fields left empty, the credentials are kept
    keep = {k: v for k, v in form.items() if not k.startswith("credentials.")} | {"name": "会员邮件2"}
    assert client.post(f"/channel-accounts/{account.id}/edit", data=keep).status_code == 303
    db.expire_all()
    assert account.name == "会员邮件2"
    assert decrypt_credentials(account.credentials_encrypted) == {"username": "news", "password": "s3cret-Pa55"}


def test_an_account_missing_a_required_setting_shows_the_error_and_writes_nothing(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Users
) -> None:
    # given an admin posting an SMTP account without a host, with a password
    csrf = login(client, user_with_role(Role.ADMIN).email)
    form = {
        "name": "坏邮件",
        "kind": "email",
        "settings.email.from_address": "news@brand.example",
        "credentials.email.password": "hunter22-secret",
        "csrf_token": csrf,
    }
    response = client.post("/channel-accounts", data=form)
    # then the form comes back with the message next to the settings and the typed password gone
    assert response.status_code == 422
    assert re.search(r'data-error="settings(\.host)?"', response.text)
    assert "hunter22-secret" not in response.text
    assert 'value="坏邮件"' in response.text
    assert _count(db, ChannelAccount) == 0


def test_a_duplicate_account_name_is_shown_next_to_the_name(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    make_account(db, workspace=workspace, clock=clock, name="沙箱")
    db.commit()
    csrf = login(client, user_with_role(Role.ADMIN).email)
    response = client.post("/channel-accounts", data={"name": "沙箱", "kind": "sandbox", "csrf_token": csrf})
    assert response.status_code == 409
    assert 'data-error="name"' in response.text
    assert _count(db, ChannelAccount) == 1


def test_testing_a_sandbox_account_reports_success(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    account = make_account(db, workspace=workspace, clock=clock, name="沙箱")
    db.commit()
    csrf = login(client, user_with_role(Role.ADMIN).email)
    response = client.post(f"/channel-accounts/{account.id}/test", data={"csrf_token": csrf})
    assert response.status_code == 200
    assert 'data-check="ok"' in response.text
    assert "<html" not in response.text  # a fragment for HTMX


# --- delivery rules ----------------------------------------------------------------------------


def test_delivery_rules_save_and_refuse_a_bad_quiet_hour(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Users
) -> None:
    csrf = login(client, user_with_role(Role.ADMIN).email)
    page = client.get("/channel-accounts/policy").text
    assert 'id="policy-defaults"' in page
    form = {
        "caps.all.day": "1",
        "caps.all.week": "3",
        "caps.sms_aliyun.month": "2",
        "platform_caps.wecom_customer.month": "4",
        "quiet_start": "25:00",
        "quiet_end": "08:00",
        "dedup_days": "5",
        "approval_threshold": "5000",
        "moments_marketing_share": "20",
        "csrf_token": csrf,
    }
    # when the quiet hours start at 25:00, then the error sits by that field and nothing is saved
    refused = client.post("/channel-accounts/policy", data=form)
    assert refused.status_code == 422
    assert 'data-error="quiet_start"' in refused.text
    assert 'value="3"' in refused.text  # the typed caps are kept
    assert _count(db, TouchPolicy) == 0
    # when corrected, then it is saved as typed
    assert client.post("/channel-accounts/policy", data=form | {"quiet_start": "22:00"}).status_code == 303
    row = db.scalars(select(TouchPolicy)).one()
    assert row.caps == {"all": {"day": 1, "week": 3}, "sms_aliyun": {"month": 2}}
    assert row.platform_caps == {"wecom_customer": {"month": 4}}
    assert (row.quiet_start, row.quiet_end, row.dedup_days, row.approval_threshold) == ("22:00", "08:00", 5, 5000)
    assert row.moments_marketing_share == 20


def test_a_cap_that_is_not_a_number_is_refused(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Users
) -> None:
    csrf = login(client, user_with_role(Role.ADMIN).email)
    form = {"caps.all.day": "两次", "quiet_start": "21:00", "quiet_end": "09:00", "dedup_days": "7"}
    form |= {"approval_threshold": "10000", "moments_marketing_share": "20", "csrf_token": csrf}
    response = client.post("/channel-accounts/policy", data=form)
    assert response.status_code == 422
    assert 'data-error="caps"' in response.text
    assert _count(db, TouchPolicy) == 0


# --- content -----------------------------------------------------------------------------------


def test_content_with_an_unknown_variable_is_refused_at_the_body(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Users
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    form = {"name": "错的素材", "kind": "text", "body": "{{ nickname }}，你好", "tags": "双11", "csrf_token": csrf}
    response = client.post("/content", data=form)
    assert response.status_code == 422
    assert 'data-error="body"' in response.text
    assert "nickname" in response.text
    assert _count(db, ContentItem) == 0


def test_content_is_listed_by_tag_and_search_and_archived(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given two items with different tags
    first = make_content(db, workspace=workspace, clock=clock, name="双11预告", tags=["双11"])
    second = make_content(db, workspace=workspace, clock=clock, name="会员日", body="会员日快乐", tags=["会员"])
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when filtered by tag or searched, then only the matching one is listed
    by_tag = client.get("/content", params={"tag": "会员"}).text
    assert f'data-content="{second.id}"' in by_tag and f'data-content="{first.id}"' not in by_tag
    by_text = client.get("/content", params={"q": "预告"}).text
    assert f'data-content="{first.id}"' in by_text and f'data-content="{second.id}"' not in by_text
    # when one is archived, then it leaves the list
    assert client.post(f"/content/{first.id}/archive", data={"csrf_token": csrf}).status_code == 303
    listing = client.get("/content").text
    assert f'data-content="{first.id}"' not in listing and f'data-content="{second.id}"' in listing


def test_a_link_card_saves_its_kind_fields_only(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Users
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    form = {
        "name": "新品卡片",
        "kind": "link",
        "body": "{{ name }}，新品上架 {{ link }}",
        "title": "冬季新品",
        "description": "限时 8 折",
        "link_url": "https://shop.example/new",
        "sms_template_code": "SMS_1",  # typed before switching kind: not a link card's field
        "tags": "新品， 冬季",
        "is_marketing": "1",
        "csrf_token": csrf,
    }
    assert client.post("/content", data=form).status_code == 303
    item = db.scalars(select(ContentItem)).one()
    assert (item.kind, item.title, item.link_url, item.sms_template_code) == (
        "link",
        "冬季新品",
        "https://shop.example/new",
        None,
    )
    assert item.tags == ["新品", "冬季"]


def test_preview_renders_for_a_customer_or_names_the_missing_variable(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a template using the name, a customer with a name and one without
    named, unnamed = _customers(db, workspace, clock, ["王芳", ""])
    item = make_content(db, workspace=workspace, clock=clock, body="{{ name }}，双十一会员专享礼已到账")
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)
    # then the named customer's message renders and the other's names the variable
    good = client.get(f"/content/{item.id}/preview", params={"customer_id": str(named.id)})
    assert good.status_code == 200
    assert '<div style="white-space: pre-wrap" data-part="text">王芳，双十一会员专享礼已到账</div>' in good.text
    bad = client.get(f"/content/{item.id}/preview", params={"customer_id": str(unnamed.id)}).text
    assert 'data-error="preview"' in bad and "name" in bad
    typo = client.get(f"/content/{item.id}/preview", params={"customer_id": "abc"}).text
    assert 'data-error="preview"' in typo


# --- broadcasts --------------------------------------------------------------------------------


def _wizard(ids: dict[str, int], csrf: str, **changes: str) -> dict[str, str]:
    form = {
        "name": "双11 老客召回",
        "segment_id": str(ids["segment"]),
        "account_0": str(ids["account"]),
        "variant_0_content_id": str(ids["content"]),
        "variant_0_weight": "50",
        "holdout_pct": "0",
        "goal_type": "order",
        "goal_days": "7",
        "brief_objective": "召回沉睡老客",
        "brief_hook": "满 199 减 50",
        "quiet_hours": "hold",
        "scheduled_at": "",
        "csrf_token": csrf,
    }
    return form | changes


def test_a_wizard_with_a_bad_holdout_shows_the_error_and_saves_nothing(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    response = client.post("/broadcasts", data=_wizard(ids, csrf, holdout_pct="80"))
    assert response.status_code == 422
    assert 'data-error="holdout_pct"' in response.text
    assert 'value="双11 老客召回"' in response.text
    assert _count(db, Broadcast) == 1
    no_channel = client.post("/broadcasts", data=_wizard(ids, csrf, account_0=""))
    assert no_channel.status_code == 422
    assert 'data-error="channel_account_ids.0"' in no_channel.text
    assert _count(db, Broadcast) == 1


def test_a_wizard_saves_a_draft_in_the_brand_time_zone_and_submits_it(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when a draft is saved for 20:00 on 24 November (Asia/Shanghai)
    response = client.post("/broadcasts", data=_wizard(ids, csrf, scheduled_at="2026-11-24T20:00", holdout_pct="20"))
    assert response.status_code == 303
    broadcast = db.scalars(select(Broadcast).order_by(Broadcast.id.desc())).first()
    assert broadcast is not None
    assert response.headers["location"] == f"/broadcasts/{broadcast.id}"
    assert broadcast.status == BroadcastStatus.DRAFT
    assert broadcast.scheduled_at is not None and broadcast.scheduled_at.isoformat().startswith("2026-11-24T12:00")
    assert broadcast.brief["objective"] == "召回沉睡老客" and broadcast.holdout_pct == 20
    assert broadcast.goal == {"type": "order", "days": 7, "event_type": None}
    # and the edit form shows the time as typed
    assert 'value="2026-11-24T20:00"' in client.get(f"/broadcasts/{broadcast.id}/edit").text
    # when submitted from the detail page, then it is scheduled
    assert client.post(f"/broadcasts/{broadcast.id}/submit", data={"csrf_token": csrf}).status_code == 303
    db.expire_all()
    assert broadcast.status == BroadcastStatus.SCHEDULED
    assert broadcast.audience_size == 2
    page = client.get(f"/broadcasts/{broadcast.id}").text
    assert 'data-broadcast-status="scheduled"' in page and 'id="cancel-broadcast"' in page


def test_the_forecast_panel_shows_audience_sendable_and_suppressions(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given 3 customers in the segment, one unsubscribed from SMS, and an SMS-like sandbox account
    customers = _customers(db, workspace, clock, ["王芳", "李雷", "韩梅梅"])
    make_consent(db, customer=customers[0], channel="sms", status="unsubscribed", at=clock.now())
    segment = make_segment(db, workspace=workspace, clock=clock, members=[c.id for c in customers])
    account = make_account(db, workspace=workspace, clock=clock, settings={"consent_channel": "sms"})
    item = make_content(db, workspace=workspace, clock=clock)
    db.commit()
    ids = {"segment": segment.id, "account": account.id, "content": item.id}
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when the operator asks for a forecast
    response = client.post("/broadcasts/forecast", data=_wizard(ids, csrf))
    # then the panel reads "3 人 · 预计发送 2 · 退订 1"
    assert response.status_code == 200
    assert re.search(r'id="forecast-summary">3 人 · 预计发送 2 · 退订 1</div>', response.text), response.text
    assert _count(db, Broadcast) == 0
    # and a form it cannot use answers with the reason, not a 500
    bad = client.post("/broadcasts/forecast", data=_wizard(ids, csrf, segment_id=""))
    assert bad.status_code == 200 and 'data-error="forecast"' in bad.text


def test_a_large_broadcast_waits_for_an_admin_to_approve(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an approval threshold of 1 and a segment of 2
    ids = _seed(db, workspace, clock)
    make_policy(db, workspace=workspace, clock=clock, approval_threshold=1)
    db.commit()
    operator, admin = user_with_role(Role.OPERATOR), user_with_role(Role.ADMIN)
    csrf = login(client, operator.email)
    # when the operator submits, then it waits for approval and they see no approve button
    assert client.post(f"/broadcasts/{ids['broadcast']}/submit", data={"csrf_token": csrf}).status_code == 303
    page = client.get(f"/broadcasts/{ids['broadcast']}").text
    assert 'data-broadcast-status="pending_approval"' in page
    assert 'id="approve-broadcast"' not in page
    assert client.post(f"/broadcasts/{ids['broadcast']}/approve", data={"csrf_token": csrf}).status_code == 403
    db.expire_all()
    assert db.get(Broadcast, ids["broadcast"]).status == BroadcastStatus.PENDING_APPROVAL  # type: ignore[union-attr]
    # when the admin approves, then it is scheduled
    client.post("/logout", data={"csrf_token": csrf})
    csrf = login(client, admin.email)
    assert 'id="approve-broadcast"' in client.get(f"/broadcasts/{ids['broadcast']}").text
    assert client.post(f"/broadcasts/{ids['broadcast']}/approve", data={"csrf_token": csrf}).status_code == 303
    db.expire_all()
    broadcast = db.get(Broadcast, ids["broadcast"])
    assert broadcast is not None and broadcast.status == BroadcastStatus.SCHEDULED
    assert broadcast.approved_by is not None


def test_submitting_twice_flashes_the_conflict(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    client.post(f"/broadcasts/{ids['broadcast']}/submit", data={"csrf_token": csrf})
    again = client.post(f"/broadcasts/{ids['broadcast']}/submit", data={"csrf_token": csrf})
    assert again.status_code == 303
    assert "操作冲突" in client.get(f"/broadcasts/{ids['broadcast']}").text


def test_after_dispatch_the_outbox_and_the_results_show_what_was_sent(
    client: TestClient, db: Session, database: Database, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a broadcast to two customers, submitted and dispatched
    ids = _seed(db, workspace, clock)
    submit_broadcast(db, actor=actor_for(workspace), broadcast_id=ids["broadcast"], clock=clock)
    db.commit()
    dispatch(database, clock)
    login(client, user_with_role(Role.ANALYST).email)
    # then the outbox lists both messages, newest first
    outbox = client.get("/outbox").text
    assert outbox.count("data-message=") == 2
    assert "王芳，双十一会员专享礼已到账" in outbox and "李雷，双十一会员专享礼已到账" in outbox
    # and the results count two planned, two sent, nothing suppressed
    page = client.get(f"/broadcasts/{ids['broadcast']}").text
    assert 'data-broadcast-status="done"' in page
    assert 'data-count="planned">2<' in page
    assert 'data-count="sent">2<' in page
    assert 'data-count="holdout">0<' in page
    assert '<tr data-variant="A">' in page
    # and the customer's page lists the message
    detail = client.get(f"/customers/{ids['customer']}").text
    assert 'id="messages"' in detail
    assert 'data-delivery-status="sent"' in detail


def test_a_draft_is_edited_in_the_wizard_then_cancelled(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a draft
    ids = _seed(db, workspace, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    edit = client.get(f"/broadcasts/{ids['broadcast']}/edit").text
    assert 'value="双11"' in edit
    # when it is renamed with quiet hours dropped, then the draft changes
    form = _wizard(ids, csrf, name="双11 第二波", quiet_hours="drop")
    assert client.post(f"/broadcasts/{ids['broadcast']}/edit", data=form).status_code == 303
    db.expire_all()
    broadcast = db.get(Broadcast, ids["broadcast"])
    assert broadcast is not None
    assert (broadcast.name, broadcast.quiet_hours, broadcast.status) == ("双11 第二波", "drop", BroadcastStatus.DRAFT)
    # when it is cancelled, then it can no longer be edited
    assert client.post(f"/broadcasts/{ids['broadcast']}/cancel", data={"csrf_token": csrf}).status_code == 303
    db.expire_all()
    assert broadcast.status == BroadcastStatus.CANCELLED
    assert client.get(f"/broadcasts/{ids['broadcast']}/edit").headers["location"] == f"/broadcasts/{ids['broadcast']}"
    refused = client.post(f"/broadcasts/{ids['broadcast']}/edit", data=form | {"name": "复活"})
    assert refused.status_code == 409
    db.expire_all()
    assert broadcast.name == "双11 第二波"
