"""Messaging services: channel accounts (credentials sealed, names unique, tests), the content
library (checked templates, tags, archive, preview per customer), policy settings, the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, get_args

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.errors import CustomerNotFound
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from siyu.messaging import adapters
from siyu.messaging.crypto import decrypt_credentials
from siyu.messaging.schemas import AccountIn, CapScope, ContentIn, PolicyIn
from siyu.messaging.service import accounts, content_library, outbox, policy_settings
from siyu.models import (
    AdapterKind,
    AuditEntry,
    ChannelAccount,
    ContentItem,
    ContentKind,
    Customer,
    Delivery,
    Role,
    SandboxMessage,
    TouchPolicy,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_staff, make_workspace
from tests.messaging.factories import make_account, make_content


def _customer(db: Session, clock: FrozenClock, ws: Workspace, **values: Any) -> Customer:
    return make_customer(db, actor=Actor.system(ws.id), clock=clock, **values).customer


# --- channel accounts ----------------------------------------------------------------------------------


def test_an_account_keeps_its_credentials_sealed_and_audits_no_secret(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given an admin
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    # when they add an SMS-simulating sandbox account with a secret
    data = AccountIn(
        name=" 短信沙箱 ", kind=AdapterKind.SANDBOX, settings={"consent_channel": "sms"}, credentials={"key": "s3cret"}
    )
    account = accounts.create_account(db, actor=admin, data=data, clock=clock)
    # then the secret is stored encrypted only, and the audit trail says only that there is one
    assert account.name == "短信沙箱"
    assert account.credentials_encrypted is not None and "s3cret" not in account.credentials_encrypted
    assert decrypt_credentials(account.credentials_encrypted) == {"key": "s3cret"}
    entry = db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "channel_account")).one()
    assert entry.after is not None and "s3cret" not in str(entry.after) and entry.after["has_credentials"] is True
    assert [a.id for a in accounts.list_accounts(db, admin)] == [account.id]


def test_credentials_none_keeps_empty_clears_and_a_value_replaces(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given an account with a secret
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)

    def shape(credentials: dict[str, Any] | None) -> AccountIn:
        return AccountIn(name="邮件", kind=AdapterKind.SANDBOX, credentials=credentials)

    account = accounts.create_account(db, actor=admin, data=shape({"p": "1"}), clock=clock)
    # when it is saved without credentials, then with new ones, then with {}
    accounts.update_account(db, actor=admin, account_id=account.id, data=shape(None), clock=clock)
    kept = decrypt_credentials(account.credentials_encrypted)
    accounts.update_account(db, actor=admin, account_id=account.id, data=shape({"p": "2"}), clock=clock)
    replaced = decrypt_credentials(account.credentials_encrypted)
    accounts.update_account(db, actor=admin, account_id=account.id, data=shape({}), clock=clock)
    # then: kept, replaced, cleared
    assert (kept, replaced, account.credentials_encrypted) == ({"p": "1"}, {"p": "2"}, None)


def test_account_names_are_unique_per_workspace_and_kinds_fixed(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given an account named 沙箱 in one workspace
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    first = accounts.create_account(
        db, actor=actor_for(ws), data=AccountIn(name="沙箱", kind=AdapterKind.SANDBOX), clock=clock
    )
    # when the same name is used again there, and in another workspace
    with pytest.raises(Conflict) as taken:
        accounts.create_account(
            db, actor=actor_for(ws), data=AccountIn(name="沙箱", kind=AdapterKind.SANDBOX), clock=clock
        )
    elsewhere = accounts.create_account(
        db, actor=actor_for(other), data=AccountIn(name="沙箱", kind=AdapterKind.SANDBOX), clock=clock
    )
    # then the first is a conflict naming "name"; the other workspace may use it
    assert taken.value.details == {"field": "name"}
    assert elsewhere.workspace_id == other.id
    # and the kind of an account cannot change, nor another workspace's account be read
    with pytest.raises(InvalidInput) as kind:
        accounts.update_account(
            db,
            actor=actor_for(ws),
            account_id=first.id,
            data=AccountIn(name="沙箱", kind=AdapterKind.WEBHOOK),
            clock=clock,
        )
    assert kind.value.details == {"field": "kind"}
    with pytest.raises(NotFound):
        accounts.get_account(db, actor_for(ws), elsewhere.id)


def test_bad_settings_are_refused_naming_settings(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a sandbox told to simulate a consent channel that does not exist
    ws = make_workspace(db, clock=clock)
    data = AccountIn(name="沙箱", kind=AdapterKind.SANDBOX, settings={"consent_channel": "pigeon"})
    # when it is saved, then it is refused and nothing is written
    with pytest.raises(InvalidInput) as refused:
        accounts.create_account(db, actor=actor_for(ws), data=data, clock=clock)
    assert refused.value.details == {"field": "settings"}
    assert db.scalar(select(func.count()).select_from(ChannelAccount)) == 0


def test_only_touch_channels_manages_accounts(db: Session, database: Database, clock: FrozenClock) -> None:
    # given an operator (touch:write, not touch:channels) and an analyst
    ws = make_workspace(db, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    data = AccountIn(name="新", kind=AdapterKind.SANDBOX)
    for role in (Role.OPERATOR, Role.ANALYST):
        # when they try to add, change or test an account, then it is forbidden
        with pytest.raises(PermissionDenied):
            accounts.create_account(db, actor=actor_for(ws, role=role), data=data, clock=clock)
        with pytest.raises(PermissionDenied):
            accounts.update_account(db, actor=actor_for(ws, role=role), account_id=account.id, data=data, clock=clock)
        with pytest.raises(PermissionDenied):
            accounts.test_account(db, actor=actor_for(ws, role=role), account_id=account.id, clock=clock)
        # but they may list them
        assert [a.id for a in accounts.list_accounts(db, actor_for(ws, role=role))] == [account.id]
    with pytest.raises(PermissionDenied):
        accounts.list_accounts(db, actor_for(ws, role=Role.STAFF))


def test_testing_an_account_clears_or_stores_the_error(
    db: Session, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a sandbox account carrying an old error, and a webhook account whose adapter is missing
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    sandbox = make_account(db, workspace=ws, clock=clock)
    sandbox.last_error = "旧错误"
    webhook = make_account(db, workspace=ws, clock=clock, kind=AdapterKind.WEBHOOK)
    monkeypatch.setitem(adapters._FACTORIES, AdapterKind.WEBHOOK, "siyu.messaging.adapters.no_such_module:build")
    # when both are tested
    accounts.test_account(db, actor=admin, account_id=sandbox.id, clock=clock)
    with pytest.raises(InvalidInput) as refused:
        accounts.test_account(db, actor=admin, account_id=webhook.id, clock=clock)
    # then the sandbox's error is cleared; the webhook's missing adapter is a refusal kept on the account
    assert sandbox.last_error is None
    assert refused.value.details == {"field": "kind"}
    assert webhook.last_error == "no adapter for webhook is installed"


def test_a_failing_check_is_stored_and_refused(
    db: Session, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a sandbox whose provider check fails with a network error
    ws = make_workspace(db, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)

    def failing(self: object, context: object) -> None:
        raise TimeoutError("provider did not answer")

    monkeypatch.setattr("siyu.messaging.adapters.sandbox.SandboxAdapter.check", failing)
    # when it is tested, then it is a 422 with the message, kept as the last error
    with pytest.raises(InvalidInput) as refused:
        accounts.test_account(db, actor=actor_for(ws), account_id=account.id, clock=clock)
    assert refused.value.message == "TimeoutError: provider did not answer"
    assert account.last_error == "TimeoutError: provider did not answer"


# --- content library ------------------------------------------------------------------------------------


def test_content_with_an_unknown_variable_is_refused_naming_it(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given an operator writing {{ nmae }} by mistake
    ws = make_workspace(db, clock=clock)
    data = ContentIn(name="双十一", kind=ContentKind.TEXT, body="{{ nmae }}，您好")
    # when it is saved, then it is refused naming the field and the variable, and nothing is written
    with pytest.raises(InvalidInput) as refused:
        content_library.create_content(db, actor=actor_for(ws, role=Role.OPERATOR), data=data, clock=clock)
    assert refused.value.details == {"field": "body", "variable": "nmae"}
    assert db.scalar(select(func.count()).select_from(ContentItem)) == 0


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"kind": "text", "body": ""}, "body"),
        ({"kind": "image", "body": "看图"}, "media_url"),
        ({"kind": "link", "body": "", "link_url": "https://s.example.com/a"}, "title"),
        ({"kind": "miniprogram", "title": "领券", "miniprogram_appid": "wx1"}, "miniprogram_page"),
        ({"kind": "text", "body": "戳 {{ link }}"}, "link_url"),
        ({"kind": "text", "subject": "{% if %}", "body": "好"}, "subject"),
    ],
)
def test_incomplete_content_is_refused_naming_the_field(
    db: Session, database: Database, clock: FrozenClock, values: dict[str, Any], field: str
) -> None:
    # given content missing what its kind needs (or with broken template syntax)
    ws = make_workspace(db, clock=clock)
    # when it is saved, then the refusal names the field
    with pytest.raises(InvalidInput) as refused:
        content_library.create_content(db, actor=actor_for(ws), data=ContentIn(name="素材", **values), clock=clock)
    assert refused.value.details["field"] == field


def test_links_must_be_web_addresses() -> None:
    # given a javascript: link, when validated, then it is refused naming link_url
    with pytest.raises(ValidationError) as refused:
        ContentIn(name="x", kind=ContentKind.LINK, title="t", link_url="javascript:alert(1)")
    assert refused.value.errors()[0]["loc"] == ("link_url",)


def test_library_lists_filters_by_tag_and_text_and_archives(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given three entries with tags
    ws = make_workspace(db, clock=clock)
    op = actor_for(ws, role=Role.OPERATOR)

    def add(name: str, body: str, tags: list[str]) -> ContentItem:
        data = ContentIn(name=name, kind=ContentKind.TEXT, body=body, tags=tags)
        return content_library.create_content(db, actor=op, data=data, clock=clock)

    a = add("双十一预热", "{{ name }}，双十一来了", ["大促", "会员"])
    b = add("生日礼", "生日快乐 {{ name }}", ["会员", "会员 ", " "])
    c = add("新品", "新品上市", ["上新"])
    # when filtered, archived and listed again
    by_tag = [i.id for i in content_library.list_content(db, op, tag="会员")]
    by_text = [i.id for i in content_library.list_content(db, op, q="双十一")]
    by_body = [i.id for i in content_library.list_content(db, op, q="生日快乐")]
    content_library.archive_content(db, actor=op, content_id=c.id, clock=clock)
    content_library.archive_content(db, actor=op, content_id=c.id, clock=clock)  # again: nothing changes
    # then filters match, tags are deduplicated, archived entries are hidden but kept
    assert by_tag == [b.id, a.id]
    assert by_text == [a.id]
    assert by_body == [b.id]
    assert b.tags == ["会员"]
    assert [i.id for i in content_library.list_content(db, op)] == [b.id, a.id]
    assert [i.id for i in content_library.list_content(db, op, include_archived=True)] == [c.id, b.id, a.id]
    assert content_library.all_tags(db, op) == ["会员", "大促"]
    assert content_library.get_content(db, op, c.id).archived_at == clock.now()
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "archive")) == 1
    with pytest.raises(InvalidInput):
        content_library.update_content(
            db, actor=op, content_id=c.id, data=ContentIn(name="新品", body="x"), clock=clock
        )


def test_updating_content_rechecks_and_replaces(db: Session, database: Database, clock: FrozenClock) -> None:
    # given an entry
    ws = make_workspace(db, clock=clock)
    op = actor_for(ws, role=Role.OPERATOR)
    item = content_library.create_content(db, actor=op, data=ContentIn(name="a", body="好"), clock=clock)
    # when it is replaced with a link entry, and then with an unknown variable
    clock.advance(timedelta(minutes=5))
    new = ContentIn(
        name="b", kind=ContentKind.LINK, title="领券", body="{{ name }} 戳 {{ link }}", link_url="https://x.cn/q"
    )
    content_library.update_content(db, actor=op, content_id=item.id, data=new, clock=clock)
    with pytest.raises(InvalidInput):
        bad = ContentIn(name="c", body="{{ pointz }}")
        content_library.update_content(db, actor=op, content_id=item.id, data=bad, clock=clock)
    # then the valid change is kept, the invalid one changed nothing
    assert (item.name, item.kind, item.link_url, item.body) == (
        "b",
        "link",
        "https://x.cn/q",
        "{{ name }} 戳 {{ link }}",
    )
    assert item.updated_at == clock.now()
    # and analysts may read but not write
    with pytest.raises(PermissionDenied):
        content_library.create_content(db, actor=actor_for(ws, role=Role.ANALYST), data=new, clock=clock)


def test_preview_renders_for_one_customer(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a customer owned by 小美 and content using name, link, brand, staff name and coupon
    ws = make_workspace(db, clock=clock, name="思域咖啡")
    staff = make_staff(db, workspace=ws, clock=clock, name="小美")
    customer = _customer(db, clock, ws, name="王芳")
    customer.owner_staff_id = staff.id
    db.flush()
    item = make_content(
        db,
        workspace=ws,
        clock=clock,
        kind=ContentKind.LINK,
        subject="{{ brand }}",
        body="{{ name }}，{{ staff_name }}送您 {{ coupon_code }}：{{ link }}",
        title="领券",
        link_url="https://shop.example.com/coupon",
    )
    # when it is previewed
    message = content_library.preview_content(
        db, actor=actor_for(ws, role=Role.ANALYST), content_id=item.id, customer_id=customer.id, clock=clock
    )
    # then every variable is filled as a send would, the link being the content's own
    assert message == {
        "kind": "link",
        "subject": "思域咖啡",
        "text": "王芳，小美送您 PREVIEW-COUPON：https://shop.example.com/coupon",
        "title": "领券",
        "link": "https://shop.example.com/coupon",
    }


def test_preview_names_a_variable_the_customer_lacks(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a customer without a name and content greeting by name
    ws = make_workspace(db, clock=clock)
    customer = _customer(db, clock, ws)
    item = make_content(db, workspace=ws, clock=clock, body="{{ name }}，您好")
    # when previewed, then it is refused naming the variable
    with pytest.raises(InvalidInput) as refused:
        content_library.preview_content(
            db, actor=actor_for(ws), content_id=item.id, customer_id=customer.id, clock=clock
        )
    assert refused.value.details == {"field": "customer_id", "variable": "name"}


def test_preview_respects_the_actors_part_of_the_pool(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a customer owned by another staff member, and a store manager with touch:read added
    ws = make_workspace(db, clock=clock)
    mine, theirs = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    customer = _customer(db, clock, ws, name="李雷")
    customer.owner_staff_id = theirs.id
    db.flush()
    item = make_content(db, workspace=ws, clock=clock, body="{{ name }}")
    base = actor_for(ws, role=Role.STAFF, staff_id=mine.id)
    staff = Actor(
        kind="user",
        workspace_id=ws.id,
        label="s",
        scopes=base.scopes | {"touch:read"},
        role=Role.STAFF,
        staff_id=mine.id,
    )
    # when they preview for that customer, then the customer is not found
    with pytest.raises(CustomerNotFound):
        content_library.preview_content(db, actor=staff, content_id=item.id, customer_id=customer.id, clock=clock)


# --- policy settings ------------------------------------------------------------------------------------


def test_policy_defaults_until_saved_then_the_saved_one(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a workspace with no policy
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    # when it is read, saved and read again
    default = policy_settings.get_policy(db, actor_for(ws, role=Role.ANALYST))
    data = PolicyIn(
        caps={"all": {"day": 1, "week": 3}, "sms_aliyun": {"month": 2}, "email": {}},
        platform_caps={"wecom_customer": {"month": 4}},
        quiet_start="22:00",
        quiet_end="08:30",
        dedup_days=3,
        approval_threshold=10,
        moments_marketing_share=25,
    )
    policy_settings.save_policy(db, actor=admin, data=data, clock=clock)
    saved = policy_settings.get_policy(db, admin)
    # then the defaults come from the policy module, unsaved; the saved row replaces them
    assert default.id is None
    assert (default.caps, default.platform_caps) == (
        {"all": {"day": 2, "week": 5, "month": 12}},
        {"wecom_customer": {"month": 4}},
    )
    assert (default.quiet_start, default.quiet_end, default.dedup_days, default.approval_threshold) == (
        "21:00",
        "09:00",
        7,
        10_000,
    )
    assert saved.id is not None
    assert saved.caps == {"all": {"day": 1, "week": 3}, "sms_aliyun": {"month": 2}}
    assert (saved.quiet_start, saved.quiet_end, saved.dedup_days, saved.approval_threshold) == ("22:00", "08:30", 3, 10)
    assert saved.moments_marketing_share == 25
    # and saving again updates the one row
    policy_settings.save_policy(db, actor=admin, data=PolicyIn(dedup_days=0), clock=clock)
    assert db.scalar(select(func.count()).select_from(TouchPolicy)) == 1
    assert policy_settings.get_policy(db, admin).caps == {}
    with pytest.raises(PermissionDenied):
        policy_settings.save_policy(db, actor=actor_for(ws, role=Role.OPERATOR), data=data, clock=clock)


@pytest.mark.parametrize(
    ("values", "loc"),
    [
        ({"caps": {"fax": {"day": 1}}}, ("caps", "fax", "[key]")),
        ({"caps": {"all": {"year": 1}}}, ("caps", "all", "year", "[key]")),
        ({"caps": {"all": {"day": 0}}}, ("caps", "all", "day")),
        ({"caps": {"all": {"day": "2"}}}, ("caps", "all", "day")),
        ({"caps": {"all": {"day": 1.5}}}, ("caps", "all", "day")),
        ({"caps": {"all": ["day"]}}, ("caps", "all")),
        ({"platform_caps": {"sms_tencent": {"week": -1}}}, ("platform_caps", "sms_tencent", "week")),
        ({"caps": "all"}, ("caps",)),
        ({"quiet_start": "25:00"}, ("quiet_start",)),
        ({"quiet_end": "9:00"}, ("quiet_end",)),
        ({"dedup_days": 91}, ("dedup_days",)),
        ({"approval_threshold": -1}, ("approval_threshold",)),
        ({"moments_marketing_share": 101}, ("moments_marketing_share",)),
    ],
)
def test_bad_policy_values_name_their_path(values: dict[str, Any], loc: tuple[str, ...]) -> None:
    # given a policy with one bad value, when validated, then the error names where it is
    with pytest.raises(ValidationError) as refused:
        PolicyIn.model_validate(values)
    assert refused.value.errors()[0]["loc"] == loc


def test_cap_scopes_are_all_and_every_adapter_kind() -> None:
    # given the scopes a cap may name, then they are "all" and exactly the adapter kinds
    assert set(get_args(CapScope)) == {"all", "sms"} | {str(k) for k in AdapterKind}


# --- outbox and deliveries --------------------------------------------------------------------------------


def _delivery(db: Session, ws: Workspace, customer: Customer, clock: FrozenClock, source_id: int) -> Delivery:
    row = Delivery(
        workspace_id=ws.id,
        source="broadcast",
        source_id=source_id,
        step="",
        customer_id=customer.id,
        status="sent",
        not_before=clock.now(),
        planned_at=clock.now() + timedelta(minutes=source_id),
        message={"text": "你好"},
    )
    db.add(row)
    db.flush()
    return row


def test_outbox_pages_newest_first(db: Session, database: Database, clock: FrozenClock) -> None:
    # given five sandbox messages in one workspace and one in another
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    customer = _customer(db, clock, ws)
    rows = []
    for n in range(5):
        delivery = _delivery(db, ws, customer, clock, n + 1)
        rows.append(
            SandboxMessage(
                workspace_id=ws.id,
                delivery_id=delivery.id,
                customer_id=customer.id,
                channel_account_id=account.id,
                message={"text": f"#{n}"},
                sent_at=clock.now(),
            )
        )
    db.add_all(rows)
    foreign_account = make_account(db, workspace=other, clock=clock)
    foreign_customer = _customer(db, clock, other)
    db.add(
        SandboxMessage(
            workspace_id=other.id,
            delivery_id=_delivery(db, other, foreign_customer, clock, 9).id,
            customer_id=foreign_customer.id,
            channel_account_id=foreign_account.id,
            message={"text": "别家"},
            sent_at=clock.now(),
        )
    )
    db.flush()
    actor = actor_for(ws, role=Role.ANALYST)
    # when paged two at a time
    first = outbox.list_outbox(db, actor, limit=2)
    second = outbox.list_outbox(db, actor, cursor=first.next_cursor, limit=2)
    third = outbox.list_outbox(db, actor, cursor=second.next_cursor, limit=2)
    # then every message of this workspace comes once, newest first, and the last page ends
    texts = [m.message["text"] for page in (first, second, third) for m in page.items]
    assert texts == ["#4", "#3", "#2", "#1", "#0"]
    assert third.next_cursor is None
    with pytest.raises(InvalidInput):
        outbox.list_outbox(db, actor, cursor="not-a-cursor!")


def test_deliveries_of_a_customer_respect_visibility(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a customer owned by 小王 with two deliveries, and another staff member
    ws = make_workspace(db, clock=clock)
    owner, stranger = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    customer = _customer(db, clock, ws)
    customer.owner_staff_id = owner.id
    older, newer = _delivery(db, ws, customer, clock, 1), _delivery(db, ws, customer, clock, 2)
    # when the owner, an analyst and the stranger ask
    mine = outbox.deliveries_of_customer(db, actor_for(ws, role=Role.STAFF, staff_id=owner.id), customer.id)
    analyst = outbox.deliveries_of_customer(db, actor_for(ws, role=Role.ANALYST), customer.id, limit=1)
    # then the owner sees both newest first, the analyst the newest, the stranger nothing
    assert [d.id for d in mine] == [newer.id, older.id]
    assert [d.id for d in analyst] == [newer.id]
    with pytest.raises(CustomerNotFound):
        outbox.deliveries_of_customer(db, actor_for(ws, role=Role.STAFF, staff_id=stranger.id), customer.id)
