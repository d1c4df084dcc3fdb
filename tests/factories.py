"""Factory functions for tests: keyword-only, sensible defaults, flushed not committed."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Actor
from siyu.auth.service import create_token, create_user, grant_membership
from siyu.customers.service.profile import IngestResult, ProfileInput, ingest_customer
from siyu.kit.clock import Clock
from siyu.models import (
    Channel,
    ChannelType,
    CommunityGroup,
    CostModel,
    Customer,
    Experiment,
    ExperimentMetric,
    ExperimentStatus,
    ExperimentVariant,
    Order,
    OrderStatus,
    Relationship,
    Role,
    Staff,
    Store,
    Tag,
    TagGroup,
    User,
    Workspace,
)
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


def make_channel(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    name: str | None = None,
    type: ChannelType = ChannelType.PACKAGE_CARD,
    cost_model: CostModel = CostModel.ENTRIES,
    cpa_fen: int | None = None,
    cps_basis_points: int | None = None,
    hook: str | None = "免费小样",
) -> Channel:
    channel = Channel(
        workspace_id=workspace.id,
        name=name or f"渠道{next(_seq)}",
        type=type,
        cost_model=cost_model,
        cpa_fen=cpa_fen,
        cps_basis_points=cps_basis_points,
        hook=hook,
        created_at=clock.now(),
    )
    db.add(channel)
    db.flush()
    return channel


def make_group(
    db: Session, *, workspace: Workspace, clock: Clock, name: str | None = None, limit: int = 200, members: int = 0
) -> CommunityGroup:
    group = CommunityGroup(
        workspace_id=workspace.id,
        name=name or f"福利群{next(_seq)}",
        member_limit=limit,
        member_count=members,
        join_url=f"https://work.weixin.qq.com/gm/{next(_seq)}",
        created_at=clock.now(),
    )
    db.add(group)
    db.flush()
    return group


def make_order(
    db: Session,
    *,
    customer: Customer,
    paid_at: datetime,
    total_fen: int = 19_900,
    refunded_fen: int = 0,
    platform: str = "taobao",
    external_id: str | None = None,
) -> Order:
    order = Order(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        platform=platform,
        external_id=external_id or f"T{next(_seq)}",
        status=OrderStatus.PAID if refunded_fen == 0 else OrderStatus.PARTIALLY_REFUNDED,
        total_fen=total_fen,
        refunded_fen=refunded_fen,
        paid_at=paid_at,
        created_at=paid_at,
    )
    db.add(order)
    db.flush()
    return order


def make_relationship(
    db: Session,
    *,
    customer: Customer,
    staff: Staff,
    added_at: datetime,
    channel: Channel | None = None,
    removed_at: datetime | None = None,
    removed_by: str | None = None,
) -> Relationship:
    """A friend edge written directly (the service path is tested in tests/customers)."""
    edge = Relationship(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        staff_id=staff.id,
        added_at=added_at,
        channel_id=channel.id if channel else None,
        removed_at=removed_at,
        removed_by=removed_by,
    )
    db.add(edge)
    db.flush()
    return edge


def make_experiment(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    name: str | None = None,
    metric: ExperimentMetric = ExperimentMetric.ADD_RATE,
    variants: list[tuple[str, int]] | None = None,
    status: ExperimentStatus = ExperimentStatus.RUNNING,
) -> Experiment:
    """An experiment whose first variant is the control; `variants` are (key, weight)."""
    experiment = Experiment(
        workspace_id=workspace.id,
        name=name or f"实验{next(_seq)}",
        primary_metric=metric,
        status=status,
        started_at=clock.now() if status != ExperimentStatus.DRAFT else None,
        created_at=clock.now(),
    )
    db.add(experiment)
    db.flush()
    for position, (key, weight) in enumerate(variants or [("A", 1), ("B", 1)]):
        db.add(
            ExperimentVariant(
                workspace_id=workspace.id,
                experiment_id=experiment.id,
                key=key,
                name=f"方案 {key}",
                weight=weight,
                is_control=position == 0,
                position=position,
            )
        )
    db.flush()
    return experiment


def make_live_code(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    routes: list[dict[str, Any]],
    kind: str = "staff",
    **settings: Any,
) -> Any:
    """A live code through the service (validation included); `routes` are RouteIn fields."""
    from siyu.livecodes.schemas import LiveCodeIn
    from siyu.livecodes.service import create_live_code

    data = LiveCodeIn.model_validate(
        {"name": settings.pop("name", f"活码{next(_seq)}"), "kind": kind, "routes": routes, **settings}
    )
    return create_live_code(db, actor=Actor.system(workspace.id), data=data, clock=clock)
