"""HTTP API of member tasks (check-in…), the rewards mall, redemptions and their fulfilment."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel

from siyu.auth.permissions import Actor, Scope
from siyu.customers.masking import sees_pii, shown_phone
from siyu.customers.repository import get_visible
from siyu.kit.ids import MAX_ID
from siyu.loyalty.member_tasks import definitions as tasks
from siyu.loyalty.member_tasks.schemas import CompletionIn, TaskIn
from siyu.loyalty.member_tasks.service import TaskStatus, check_in, complete_task, task_board
from siyu.loyalty.members import get_member
from siyu.loyalty.rewards import catalog
from siyu.loyalty.rewards import service as rewards
from siyu.loyalty.rewards.schemas import CancelIn, RedemptionIn, RewardIn, ShipIn
from siyu.models import LoyaltyTask, Redemption, RedemptionStatus, Reward, TaskCompletion
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["rewards"])
Reader = Annotated[Ctx, Depends(require(Scope.LOYALTY_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.LOYALTY_WRITE))]
Fulfiller = Annotated[Ctx, Depends(require(Scope.LOYALTY_FULFIL))]


# --- shapes -----------------------------------------------------------------------------------


class TaskRead(BaseModel):
    id: int
    key: str
    kind: str
    name: str
    description: str | None
    points: int
    limit_period: str
    limit_count: int
    streak_bonuses: dict[str, int]
    settings: dict[str, Any]
    is_active: bool
    sort_order: int
    created_at: datetime
    updated_at: datetime


def task_read(task: LoyaltyTask) -> TaskRead:
    return TaskRead(
        id=task.id,
        key=task.key,
        kind=str(task.kind),
        name=task.name,
        description=task.description,
        points=task.points,
        limit_period=str(task.limit_period),
        limit_count=task.limit_count,
        streak_bonuses={str(k): int(v) for k, v in (task.streak_bonuses or {}).items()},
        settings=dict(task.settings or {}),
        is_active=task.is_active,
        sort_order=task.sort_order,
        created_at=task.created_at,
        updated_at=task.updated_at,
    )


class TaskStatusRead(BaseModel):
    task: TaskRead
    period_key: str
    completed: int
    limit: int
    is_done: bool
    streak: int
    checked_in_today: bool
    next_bonus: dict[str, int] | None


def status_read(status: TaskStatus) -> TaskStatusRead:
    bonus = status.next_bonus
    return TaskStatusRead(
        task=task_read(status.task),
        period_key=status.period_key,
        completed=status.completed,
        limit=status.limit,
        is_done=status.is_done,
        streak=status.streak,
        checked_in_today=status.checked_in_today,
        next_bonus={"streak": bonus[0], "points": bonus[1]} if bonus else None,
    )


class CompletionRead(BaseModel):
    id: int
    task_id: int
    period_key: str
    slot: int
    streak: int | None
    ref: str | None
    points_entry_id: int | None
    completed_at: datetime


def completion_read(row: TaskCompletion) -> CompletionRead:
    return CompletionRead(
        id=row.id,
        task_id=row.task_id,
        period_key=row.period_key,
        slot=row.slot,
        streak=row.streak,
        ref=row.ref,
        points_entry_id=row.points_entry_id,
        completed_at=row.completed_at,
    )


class CheckInRead(BaseModel):
    day: date
    streak: int
    points: int
    bonus: int
    balance: int
    completion: CompletionRead


class RewardRead(BaseModel):
    id: int
    name: str
    kind: str
    points_price: int
    stock: int | None
    redeemed_count: int
    per_member_limit: int | None
    visible_tier_ids: list[int]
    visible_segment_id: int | None
    coupon_template_id: int | None
    description: str | None
    image_url: str | None
    is_active: bool
    sort_order: int
    created_at: datetime
    updated_at: datetime


def reward_read(row: Reward) -> RewardRead:
    return RewardRead(
        id=row.id,
        name=row.name,
        kind=str(row.kind),
        points_price=row.points_price,
        stock=row.stock,
        redeemed_count=row.redeemed_count,
        per_member_limit=row.per_member_limit,
        visible_tier_ids=[int(t) for t in row.visible_tier_ids or []],
        visible_segment_id=row.visible_segment_id,
        coupon_template_id=row.coupon_template_id,
        description=row.description,
        image_url=row.image_url,
        is_active=row.is_active,
        sort_order=row.sort_order,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class MallItemRead(BaseModel):
    reward: RewardRead
    can_redeem: bool
    reason: str | None
    redeemed: int


class MallRead(BaseModel):
    balance: int
    items: list[MallItemRead]


class RedemptionRead(BaseModel):
    id: int
    reward_id: int
    member_id: int
    points: int
    status: str
    points_entry_id: int | None
    coupon_id: int | None
    address: dict[str, str] | None
    """Gifts; the phone is masked for roles without `customers:pii`."""
    tracking_no: str | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    created_at: datetime


def redemption_read(row: Redemption, actor: Actor) -> RedemptionRead:
    address = dict(row.address) if row.address else None
    if address is not None:
        address["phone"] = shown_phone(address.get("phone"), whole=sees_pii(actor)) or ""
    return RedemptionRead(
        id=row.id,
        reward_id=row.reward_id,
        member_id=row.member_id,
        points=row.points,
        status=str(row.status),
        points_entry_id=row.points_entry_id,
        coupon_id=row.coupon_id,
        address=address,
        tracking_no=row.tracking_no,
        shipped_at=row.shipped_at,
        delivered_at=row.delivered_at,
        cancelled_at=row.cancelled_at,
        cancel_reason=row.cancel_reason,
        created_at=row.created_at,
    )


class RedemptionPage(BaseModel):
    items: list[RedemptionRead]
    next_cursor: str | None


TaskKeyPath = Annotated[str, Path(min_length=1, max_length=50)]


def _visible_customer(ctx: Ctx, customer_id: int) -> int:
    """The customer must be one the actor may see (staff: their own; store managers: their store's)."""
    return get_visible(ctx.session, ctx.actor, customer_id).id


# --- tasks ------------------------------------------------------------------------------------


@router.get("/loyalty/tasks", response_model=list[TaskRead])
def list_tasks(ctx: Reader, include_inactive: bool = True) -> list[TaskRead]:
    """The workspace's tasks in display order."""
    rows = tasks.list_tasks(ctx.session, workspace_id=ctx.actor.workspace_id, include_inactive=include_inactive)
    return [task_read(t) for t in rows]


@router.post("/loyalty/tasks", status_code=201, response_model=TaskRead)
def create_task(body: TaskIn, ctx: Writer) -> TaskRead:
    return task_read(tasks.create_task(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/loyalty/tasks/{task_id}", response_model=TaskRead)
def get_task(task_id: IdPath, ctx: Reader) -> TaskRead:
    return task_read(tasks.get_task(ctx.session, workspace_id=ctx.actor.workspace_id, task_id=task_id))


@router.put("/loyalty/tasks/{task_id}", response_model=TaskRead)
def update_task(task_id: IdPath, body: TaskIn, ctx: Writer) -> TaskRead:
    """Change a task (its key and kind stay)."""
    return task_read(tasks.update_task(ctx.session, actor=ctx.actor, task_id=task_id, data=body, clock=ctx.clock))


@router.delete("/loyalty/tasks/{task_id}", response_model=TaskRead)
def deactivate_task(task_id: IdPath, ctx: Writer) -> TaskRead:
    """Retire a task; completions and the points they paid stay."""
    return task_read(tasks.deactivate_task(ctx.session, actor=ctx.actor, task_id=task_id, clock=ctx.clock))


@router.get("/members/{customer_id}/tasks", response_model=list[TaskStatusRead])
def member_tasks(customer_id: IdPath, ctx: Reader) -> list[TaskStatusRead]:
    """The member's task board: each active task's progress in its current brand-local period."""
    cid = _visible_customer(ctx, customer_id)
    return [
        status_read(s)
        for s in task_board(ctx.session, workspace_id=ctx.actor.workspace_id, customer_id=cid, clock=ctx.clock)
    ]


@router.post("/members/{customer_id}/check-ins", status_code=201, response_model=CheckInRead)
def create_check_in(customer_id: IdPath, ctx: Writer) -> CheckInRead:
    """Today's check-in (brand calendar); 409 `already_checked_in` on a second one the same day."""
    cid = _visible_customer(ctx, customer_id)
    result = check_in(ctx.session, workspace_id=ctx.actor.workspace_id, customer_id=cid, clock=ctx.clock)
    return CheckInRead(
        day=result.day,
        streak=result.streak,
        points=result.points,
        bonus=result.bonus,
        balance=result.balance,
        completion=completion_read(result.completion),
    )


@router.post("/members/{customer_id}/tasks/{task_key}/completions", status_code=201, response_model=CompletionRead)
def create_completion(
    customer_id: IdPath, task_key: TaskKeyPath, ctx: Writer, body: CompletionIn | None = None
) -> CompletionRead:
    """Record a completed task and pay its points; the same `ref` in the same period is a retry;
    409 `task_limit_reached` over the limit, `task_requirements_not_met` for an incomplete profile."""
    cid = _visible_customer(ctx, customer_id)
    completion = complete_task(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        customer_id=cid,
        task_key=task_key,
        ref=body.ref if body else None,
        clock=ctx.clock,
    )
    return completion_read(completion)


# --- rewards ----------------------------------------------------------------------------------


@router.get("/loyalty/rewards", response_model=list[RewardRead])
def list_rewards(ctx: Reader, include_inactive: bool = True) -> list[RewardRead]:
    rows = catalog.list_rewards(ctx.session, workspace_id=ctx.actor.workspace_id, include_inactive=include_inactive)
    return [reward_read(r) for r in rows]


@router.post("/loyalty/rewards", status_code=201, response_model=RewardRead)
def create_reward(body: RewardIn, ctx: Writer) -> RewardRead:
    return reward_read(catalog.create_reward(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/loyalty/rewards/{reward_id}", response_model=RewardRead)
def get_reward(reward_id: IdPath, ctx: Reader) -> RewardRead:
    return reward_read(catalog.get_reward(ctx.session, workspace_id=ctx.actor.workspace_id, reward_id=reward_id))


@router.put("/loyalty/rewards/{reward_id}", response_model=RewardRead)
def update_reward(reward_id: IdPath, body: RewardIn, ctx: Writer) -> RewardRead:
    """Change a reward; `stock` sets what is left (under the reward's row lock)."""
    return reward_read(
        catalog.update_reward(ctx.session, actor=ctx.actor, reward_id=reward_id, data=body, clock=ctx.clock)
    )


@router.delete("/loyalty/rewards/{reward_id}", response_model=RewardRead)
def deactivate_reward(reward_id: IdPath, ctx: Writer) -> RewardRead:
    """Take a reward out of the mall; its redemptions carry on."""
    return reward_read(catalog.deactivate_reward(ctx.session, actor=ctx.actor, reward_id=reward_id, clock=ctx.clock))


@router.get("/members/{customer_id}/rewards", response_model=MallRead)
def member_mall(customer_id: IdPath, ctx: Reader) -> MallRead:
    """The mall as this member sees it: visible rewards, whether each can be redeemed now and why not."""
    cid = _visible_customer(ctx, customer_id)
    views = rewards.mall(ctx.session, workspace_id=ctx.actor.workspace_id, customer_id=cid, clock=ctx.clock)
    member = get_member(ctx.session, ctx.actor.workspace_id, cid)
    balance = views[0].balance if views else rewards.spendable_points(ctx.session, member, ctx.clock)
    items = [
        MallItemRead(reward=reward_read(v.reward), can_redeem=v.can_redeem, reason=v.reason, redeemed=v.redeemed)
        for v in views
    ]
    return MallRead(balance=balance, items=items)


@router.post("/members/{customer_id}/redemptions", status_code=201, response_model=RedemptionRead)
def create_redemption(customer_id: IdPath, body: RedemptionIn, ctx: Writer, response: Response) -> RedemptionRead:
    """Redeem points for a reward (201; a retry with the same idempotency key returns the first, 200).
    409 `insufficient_points`, `out_of_stock`, `redemption_limit_reached`, `reward_not_visible`;
    422 `invalid_address` naming the field for gifts."""
    cid = _visible_customer(ctx, customer_id)
    before = rewards.find_by_key(ctx.session, ctx.actor.workspace_id, body.idempotency_key.strip())
    redemption = rewards.redeem(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        customer_id=cid,
        reward_id=body.reward_id,
        idempotency_key=body.idempotency_key,
        address=body.address.model_dump() if body.address else None,
        clock=ctx.clock,
    )
    if before is not None and before.id == redemption.id:
        response.status_code = 200
    return redemption_read(redemption, ctx.actor)


@router.get("/members/{customer_id}/redemptions", response_model=RedemptionPage)
def member_redemptions(
    customer_id: IdPath,
    ctx: Reader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RedemptionPage:
    cid = _visible_customer(ctx, customer_id)
    page = rewards.list_redemptions(ctx.session, actor=ctx.actor, customer_id=cid, cursor=cursor, limit=limit)
    return RedemptionPage(items=[redemption_read(r, ctx.actor) for r in page.items], next_cursor=page.next_cursor)


@router.get("/redemptions", response_model=RedemptionPage)
def list_redemptions(
    ctx: Reader,
    status: RedemptionStatus | None = None,
    reward_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    customer_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RedemptionPage:
    """Redemptions newest first; `status=awaiting_shipment` is the fulfilment queue."""
    page = rewards.list_redemptions(
        ctx.session,
        actor=ctx.actor,
        status=status,
        reward_id=reward_id,
        customer_id=customer_id,
        cursor=cursor,
        limit=limit,
    )
    return RedemptionPage(items=[redemption_read(r, ctx.actor) for r in page.items], next_cursor=page.next_cursor)


@router.get("/redemptions/{redemption_id}", response_model=RedemptionRead)
def get_redemption(redemption_id: IdPath, ctx: Reader) -> RedemptionRead:
    return redemption_read(rewards.get_redemption(ctx.session, actor=ctx.actor, redemption_id=redemption_id), ctx.actor)


@router.post("/redemptions/{redemption_id}/ship", response_model=RedemptionRead)
def ship_redemption(redemption_id: IdPath, body: ShipIn, ctx: Fulfiller) -> RedemptionRead:
    row = rewards.ship_redemption(
        ctx.session, actor=ctx.actor, redemption_id=redemption_id, tracking_no=body.tracking_no, clock=ctx.clock
    )
    return redemption_read(row, ctx.actor)


@router.post("/redemptions/{redemption_id}/deliver", response_model=RedemptionRead)
def deliver_redemption(redemption_id: IdPath, ctx: Fulfiller) -> RedemptionRead:
    return redemption_read(
        rewards.deliver_redemption(ctx.session, actor=ctx.actor, redemption_id=redemption_id, clock=ctx.clock),
        ctx.actor,
    )


@router.post("/redemptions/{redemption_id}/cancel", response_model=RedemptionRead)
def cancel_redemption(redemption_id: IdPath, ctx: Fulfiller, body: CancelIn | None = None) -> RedemptionRead:
    """Cancel before shipping: points and stock go back."""
    row = rewards.cancel_redemption(
        ctx.session, actor=ctx.actor, redemption_id=redemption_id, reason=body.reason if body else None, clock=ctx.clock
    )
    return redemption_read(row, ctx.actor)
