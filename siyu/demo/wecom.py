"""The demo brand on the built-in fake WeCom: a fake corp whose members are the demo staff (by their
`wecom_user_id`), every open friend edge of a customer with a WeCom external userid as the corp's
external contacts and follows, and the workspace's integration pointing at the fake mounted at
`/fake-wecom` (`SIYU_FAKE_WECOM=true`, which `make demo` sets). The corp is written to
`<data_dir>/fake-wecom.json`, which the mounted fake loads.

All edges, not a sample: the daily full sync (`wecom_sync`) closes edges siyu has open that the corp
does not list, so a partial corp would end thousands of demo friendships at the first sync.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.db import Database
from siyu.demo.catalog import BRAND_NAME
from siyu.integrations.wecom.config import SECRET_FIELDS
from siyu.integrations.wecom.fake.mount import load_state, save_private, state_path
from siyu.integrations.wecom.fake.state import FakeCorp, FakeWecom
from siyu.integrations.wecom.settings.service import AUDIT_ENTITY, callback_url, fake_api_base_url
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials
from siyu.models import (
    CommunityGroup,
    Customer,
    GroupMember,
    Identity,
    IdentityType,
    Relationship,
    Staff,
    WecomIntegration,
    Workspace,
)
from siyu.workspaces.scope import bind_workspace

DEMO_CORP_ID = "wwqiwudemo0001"
DEMO_AGENT_ID = "1000002"

__all__ = ["DEMO_CORP_ID", "build_wecom", "demo_secrets"]


def _secret(seed: str, name: str, size: int = 32) -> bytes:
    return hashlib.sha256(f"siyu-demo-wecom:{seed}:{name}".encode()).digest()[:size]


def demo_secrets(seed: str) -> dict[str, str]:
    """The fake corp's secrets, derived from the installation's secret (stable across rebuilds)."""
    return {
        "contact_secret": base64.urlsafe_b64encode(_secret(seed, "contact")).decode().rstrip("="),
        "app_secret": base64.urlsafe_b64encode(_secret(seed, "app")).decode().rstrip("="),
        "callback_token": _secret(seed, "token", 8).hex(),
        "callback_aes_key": base64.b64encode(_secret(seed, "aes")).decode()[:43],
    }


def _epoch(moment: datetime) -> int:
    # SQLite gives naive datetimes back: they are UTC.
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _friends(session: Session, workspace_id: int) -> list[tuple[str, str, str | None, datetime, str | None, str]]:
    """(external_userid, staff userid, name, added_at, state, unionid or "") of every open edge of a
    customer with an external userid, to a staff member with a WeCom userid."""
    external = aliased(Identity)
    union = aliased(Identity)
    rows = session.execute(
        select(
            external.value,
            Staff.wecom_user_id,
            Customer.name,
            Relationship.added_at,
            Relationship.live_code_state,
            union.value,
        )
        .join(Customer, Customer.id == Relationship.customer_id)
        .join(Staff, Staff.id == Relationship.staff_id)
        .join(
            external,
            (external.customer_id == Customer.id) & (external.type == IdentityType.WECOM_EXTERNAL_USERID),
        )
        .outerjoin(union, (union.customer_id == Customer.id) & (union.type == IdentityType.WECHAT_UNIONID))
        .where(
            Relationship.workspace_id == workspace_id,
            Relationship.removed_at.is_(None),
            Staff.wecom_user_id.is_not(None),
        )
        .order_by(Relationship.added_at, Relationship.id)
    ).all()
    return [(ext, uid or "", name, added, state, unionid or "") for ext, uid, name, added, state, unionid in rows]


def _fill_corp(corp: FakeCorp, session: Session, workspace_id: int) -> None:
    corp.departments["1"] = {"id": 1, "name": BRAND_NAME, "parentid": 0}
    for staff in session.scalars(
        select(Staff).where(Staff.workspace_id == workspace_id, Staff.wecom_user_id.is_not(None))
    ):
        uid = str(staff.wecom_user_id)
        corp.users[uid] = {"userid": uid, "name": staff.name, "department": [1], "status": 1 if staff.is_active else 5}
    for ext, uid, name, added, state, unionid in _friends(session, workspace_id):
        # No made-up name: the sync would write it onto the customer.
        contact: dict[str, Any] = {"external_userid": ext, "name": name or "", "type": 1, "gender": 0, "avatar": ""}
        if unionid:
            contact["unionid"] = unionid
        corp.contacts.setdefault(ext, contact)
        corp.follows[f"{ext}|{uid}"] = {
            "userid": uid,
            "remark": "",
            "description": "",
            "createtime": _epoch(added),
            "tags": [],
            "state": state or "",
            "add_way": 1,
            "oper_userid": uid,
            "remark_mobiles": [],
        }


def _fill_groups(corp: FakeCorp, session: Session, workspace_id: int, now: datetime) -> int:
    """The demo's WeCom customer groups on the fake corp, with their current members, so the first full
    sync finds the groups as siyu has them. Everyone in a WeCom customer group has an external userid:
    a group member the demo made without one gets one here. Returns the groups seeded."""
    groups = session.scalars(
        select(CommunityGroup).where(
            CommunityGroup.workspace_id == workspace_id,
            CommunityGroup.wecom_chat_id.is_not(None),
            CommunityGroup.is_active.is_(True),
        )
    ).all()
    if not groups:
        return 0
    userids = dict(
        session.execute(
            select(Staff.id, Staff.wecom_user_id).where(
                Staff.workspace_id == workspace_id, Staff.wecom_user_id.is_not(None)
            )
        ).all()
    )
    stays = session.execute(
        select(GroupMember.group_id, GroupMember.customer_id, GroupMember.staff_id, GroupMember.joined_at).where(
            GroupMember.workspace_id == workspace_id,
            GroupMember.group_id.in_([g.id for g in groups]),
            GroupMember.left_at.is_(None),
        )
    ).all()
    customer_ids = {c for _, c, _, _ in stays if c is not None}
    external: dict[int, str] = {}
    for customer_id, value in session.execute(
        select(Identity.customer_id, Identity.value).where(
            Identity.workspace_id == workspace_id,
            Identity.type == IdentityType.WECOM_EXTERNAL_USERID,
            Identity.customer_id.in_(customer_ids),
        )
    ):
        external.setdefault(customer_id, value)
    names = dict(session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(customer_ids))).all())
    for customer_id in sorted(customer_ids - set(external)):
        value = "wmDEMO" + hashlib.sha256(f"{workspace_id}:{customer_id}".encode()).hexdigest()[:26]
        session.add(
            Identity(
                workspace_id=workspace_id,
                customer_id=customer_id,
                type=IdentityType.WECOM_EXTERNAL_USERID,
                value=value,
                source="demo",
                created_at=now,
            )
        )
        external[customer_id] = value
    session.flush()
    members: dict[int, list[dict[str, Any]]] = {g.id: [] for g in groups}
    for group_id, member_customer, staff_id, joined_at in stays:
        base = {"join_time": _epoch(joined_at), "join_scene": 3, "group_nickname": ""}
        if member_customer is not None:
            ext = external[member_customer]
            name = names.get(member_customer) or ""
            corp.contacts.setdefault(ext, {"external_userid": ext, "name": name, "type": 1, "gender": 0, "avatar": ""})
            members[group_id].append({"userid": ext, "type": 2, **base, "name": name})
        elif staff_id in userids:
            uid = str(userids[staff_id])
            members[group_id].append(
                {"userid": uid, "type": 1, **base, "name": corp.users.get(uid, {}).get("name", "")}
            )
    table = corp.table("groups")
    for group in groups:
        chat_id = str(group.wecom_chat_id)
        table[chat_id] = {
            "chat_id": chat_id,
            "name": group.name,
            "owner": str(userids.get(group.owner_staff_id or 0) or ""),
            "create_time": _epoch(group.created_at),
            "notice": group.description or "",
            "status": 0,
            "member_list": members[group.id],
            "admin_list": [],
            "member_version": "1",
        }
    return len(groups)


def _reseed(session: Session, integration: WecomIntegration, settings: Settings, workspace_id: int) -> bool:
    """The demo integration exists but the fake lost its corp (state file deleted): add it again."""
    if not integration.is_fake or integration.corp_id != DEMO_CORP_ID:
        return False
    path = state_path(settings)
    fake = load_state(path)
    if DEMO_CORP_ID in fake.corps:
        return False
    try:
        values = {k: str(v) for k, v in decrypt_credentials(integration.secrets_encrypted or "", settings).items()}
    except InvalidInput:
        values = {}
    if not all(values.get(name) for name in SECRET_FIELDS):
        values = demo_secrets(settings.session_secret())
        integration.secrets_encrypted = encrypt_credentials(values, settings)
    integration.api_base_url = fake_api_base_url(settings)
    corp = _add_corp(fake, values, settings, workspace_id)
    _fill_corp(corp, session, workspace_id)
    _fill_groups(corp, session, workspace_id, datetime.now(UTC))
    save_private(fake, path)
    return True


def _add_corp(fake: FakeWecom, values: dict[str, str], settings: Settings, workspace_id: int) -> FakeCorp:
    return fake.add_corp(
        DEMO_CORP_ID,
        contact_secret=values["contact_secret"],
        app_secret=values["app_secret"],
        agent_id=DEMO_AGENT_ID,
        callback_url=callback_url(settings, workspace_id),
        callback_token=values["callback_token"],
        callback_aes_key=values["callback_aes_key"],
    )


def build_wecom(database: Database, *, clock: Clock, settings: Settings | None = None) -> bool:
    """Configure the demo brand with a fake corp; True when the fake's state file was (re)written.

    False when the fake is off (`SIYU_FAKE_WECOM`: an integration pointing at an unmounted fake would
    only fail), when there is no demo brand, or when the brand's integration exists and the fake still
    has its corp. A demo integration whose corp vanished from the state file gets it back.
    """
    settings = settings or database.settings
    if not settings.fake_wecom:
        return False
    with database.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == "default"))
        if workspace is None:
            return False
        bind_workspace(session, workspace.id)
        existing = session.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == workspace.id))
        if existing is not None:
            return _reseed(session, existing, settings, workspace.id)
        values = demo_secrets(settings.session_secret())
        path = state_path(settings)
        fake = load_state(path)
        corp = _add_corp(fake, values, settings, workspace.id)
        _fill_corp(corp, session, workspace.id)
        now = clock.now()
        _fill_groups(corp, session, workspace.id, now)
        integration = WecomIntegration(
            workspace_id=workspace.id,
            corp_id=DEMO_CORP_ID,
            agent_id=DEMO_AGENT_ID,
            secrets_encrypted=encrypt_credentials(values, settings),
            api_base_url=fake_api_base_url(settings),
            is_fake=True,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(integration)
        session.flush()
        record(
            session,
            Actor.system(workspace.id, label="siyu demo"),
            action="create",
            entity_type=AUDIT_ENTITY,
            entity_id=integration.id,
            after={
                "corp_id": DEMO_CORP_ID,
                "is_fake": True,
                "members": len(corp.users),
                "contacts": len(corp.contacts),
                "follows": len(corp.follows),
            },
            clock=clock,
        )
        # The demo brand's official account lives on the same fake (parametric QR codes, follows,
        # template messages, web OAuth for the member H5).
        from siyu.integrations.wechat.service import ensure_fake_account

        ensure_fake_account(session, workspace_id=workspace.id, settings=settings, clock=clock, fake=fake)
        save_private(fake, path)
    return True
