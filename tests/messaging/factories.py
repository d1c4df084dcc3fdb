"""Factory functions for messaging and campaign rows (written directly; services are tested on their own)."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.schemas import BroadcastIn, VariantIn
from siyu.campaigns.broadcasts.service import create_broadcast
from siyu.kit.clock import Clock
from siyu.messaging.crypto import encrypt_credentials
from siyu.models import AdapterKind, Broadcast, ChannelAccount, ContentItem, ContentKind, TouchPolicy, Workspace
from tests.factories import actor_for

_seq = itertools.count(1)


def make_account(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    kind: AdapterKind = AdapterKind.SANDBOX,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    is_active: bool = True,
) -> ChannelAccount:
    account = ChannelAccount(
        workspace_id=workspace.id,
        name=name or f"渠道账号{next(_seq)}",
        kind=kind,
        settings=settings or {},
        credentials_encrypted=encrypt_credentials(credentials) if credentials else None,
        is_active=is_active,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(account)
    db.flush()
    return account


def make_content(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    body: str = "{{ name }}，双十一会员专享礼已到账",
    kind: ContentKind = ContentKind.TEXT,
    name: str | None = None,
    **values: Any,
) -> ContentItem:
    item = ContentItem(
        workspace_id=workspace.id,
        name=name or f"素材{next(_seq)}",
        kind=kind,
        body=body,
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(item)
    db.flush()
    return item


def make_policy(db: Session, *, workspace: Workspace, clock: Clock, **values: Any) -> TouchPolicy:
    """A saved policy; unspecified fields: caps off, no quiet hours, no dedup (tests opt in)."""
    defaults: dict[str, Any] = {
        "caps": {},
        "platform_caps": {},
        "quiet_start": "00:00",
        "quiet_end": "00:00",
        "dedup_days": 0,
        "approval_threshold": 10_000,
    }
    row = TouchPolicy(workspace_id=workspace.id, updated_at=clock.now(), **(defaults | values))
    db.add(row)
    db.flush()
    return row


def make_broadcast(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    segment_id: int,
    accounts: list[ChannelAccount],
    contents: list[ContentItem],
    **values: Any,
) -> Broadcast:
    """A draft broadcast through the service (so references are checked as in production)."""
    data = BroadcastIn(
        name=values.pop("name", f"群发{next(_seq)}"),
        segment_id=segment_id,
        channel_account_ids=[a.id for a in accounts],
        variants=[VariantIn(key=chr(ord("A") + i), content_id=c.id, weight=50) for i, c in enumerate(contents)],
        **values,
    )
    return create_broadcast(db, actor=actor_for(workspace), data=data, clock=clock)
