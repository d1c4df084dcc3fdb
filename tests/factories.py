"""Factory functions for tests: keyword-only, sensible defaults, flushed not committed."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Actor
from siyu.auth.service import create_token, create_user, grant_membership
from siyu.customers.service.profile import IngestResult, ProfileInput, ingest_customer
from siyu.kit.clock import Clock
from siyu.models import Role, Staff, Store, Tag, TagGroup, User, Workspace
from siyu.workspaces.service import create_workspace

_seq = itertools.count(1)


def make_workspace(db: Session, *, clock: Clock, slug: str | None = None, name: str = "测试品牌") -> Workspace:
    return create_workspace(db, slug=slug or f"ws-{next(_seq)}", name=name, clock=clock)


def make_store(db: Session, *, workspace: Workspace, code: str | None = None, name: str = "上海静安店") -> Store:
    store = Store(workspace_id=workspace.id, code=code or f"S{next(_seq)}", name=name)
    db.add(store)
    db.flush()
    return store


def make_staff(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    name: str | None = None,
    store: Store | None = None,
    wecom_user_id: str | None = None,
) -> Staff:
    staff = Staff(
        workspace_id=workspace.id,
        name=name or f"导购{next(_seq)}",
        store_id=store.id if store else None,
        wecom_user_id=wecom_user_id,
        created_at=clock.now(),
    )
    db.add(staff)
    db.flush()
    return staff


def actor_for(
    workspace: Workspace,
    *,
    role: Role = Role.ADMIN,
    staff_id: int | None = None,
    store_id: int | None = None,
    user_id: int | None = None,
) -> Actor:
    return Actor(
        kind="user",
        workspace_id=workspace.id,
        label=f"{role}@test",
        user_id=user_id,
        scopes=frozenset(str(s) for s in ROLE_SCOPES[role]),
        role=role,
        staff_id=staff_id,
        store_id=store_id,
    )


def make_user(
    db: Session,
    *,
    clock: Clock,
    workspace: Workspace,
    role: Role = Role.ADMIN,
    email: str | None = None,
    password: str = "correct-horse-1",
    staff_id: int | None = None,
    store_id: int | None = None,
) -> User:
    user = create_user(
        db, email=email or f"user{next(_seq)}@example.com", name="测试用户", password=password, clock=clock
    )
    grant_membership(
        db, user_id=user.id, workspace_id=workspace.id, role=role, staff_id=staff_id, store_id=store_id, clock=clock
    )
    return user


def make_token(db: Session, *, clock: Clock, workspace: Workspace, scopes: list[str] | None = None) -> str:
    actor = Actor.system(workspace.id)
    issued = create_token(
        db, workspace_id=workspace.id, name="test", actor=actor, clock=clock, scopes=scopes or sorted(actor.scopes)
    )
    return issued.secret


def make_customer(
    db: Session,
    *,
    actor: Actor,
    clock: Clock,
    phone: str | None = None,
    identities: list[tuple[str, str]] | None = None,
    **values: Any,
) -> IngestResult:
    pairs = list(identities or [])
    if phone is None and not pairs:
        phone = f"1380013{next(_seq) % 10000:04d}"
    if phone is not None:
        values["phone"] = phone
    attributes = values.pop("attributes", {})
    return ingest_customer(
        db,
        actor=actor,
        identities=pairs,
        profile=ProfileInput(values=values, attributes=attributes),
        source="test",
        clock=clock,
    )


def make_tag(db: Session, *, workspace: Workspace, name: str | None = None, group: TagGroup | None = None) -> Tag:
    if group is None:
        group = TagGroup(workspace_id=workspace.id, name=f"分组{next(_seq)}")
        db.add(group)
        db.flush()
    tag = Tag(workspace_id=workspace.id, group_id=group.id, name=name or f"标签{next(_seq)}")
    db.add(tag)
    db.flush()
    return tag
