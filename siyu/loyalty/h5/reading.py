"""What the member H5 pages show, read for one member: balance, expiring points, history, coupons,
redemptions. Reads only; every action goes through the owning area's service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock, as_utc
from siyu.kit.pagination import Page, decode_id_cursor, encode_cursor
from siyu.loyalty.member_tasks.definitions import CHECK_IN_KEY
from siyu.loyalty.points.ledger import expiring_soon
from siyu.loyalty.program import brand_zone, last_valid_day
from siyu.loyalty.rewards.service import spendable_points
from siyu.models import (
    Coupon,
    CouponState,
    CouponTemplate,
    Customer,
    LoyaltyProgram,
    LoyaltyTask,
    Member,
    PointsEntry,
    PointsReason,
    Redemption,
    Reward,
    TaskCompletion,
    TaskKind,
    Tier,
    Workspace,
)

HISTORY_PAGE = 20
MAX_MERGE_HOPS = 10
DEFAULT_NOTICE_DAYS = 30


def current_customer(session: Session, *, workspace_id: int, customer_id: int) -> Customer | None:
    """The customer a link names, following merges to the survivor; None if gone or erased."""
    customer = session.scalar(select(Customer).where(Customer.workspace_id == workspace_id, Customer.id == customer_id))
    hops = 0
    while customer is not None and customer.merged_into_id is not None and hops < MAX_MERGE_HOPS:
        customer = session.scalar(
            select(Customer).where(Customer.workspace_id == workspace_id, Customer.id == customer.merged_into_id)
        )
        hops += 1
    if customer is None or customer.merged_into_id is not None or customer.erased_at is not None:
        return None
    return customer


def brand_name(session: Session, workspace_id: int) -> str:
    return session.scalar(select(Workspace.name).where(Workspace.id == workspace_id)) or ""


def member_of(session: Session, *, workspace_id: int, customer_id: int) -> Member | None:
    return session.scalar(select(Member).where(Member.workspace_id == workspace_id, Member.customer_id == customer_id))


def base_tier(session: Session, workspace_id: int) -> Tier | None:
    return session.scalar(select(Tier).where(Tier.workspace_id == workspace_id, Tier.rank == 0))


def tier_of(session: Session, member: Member | None, workspace_id: int) -> Tier | None:
    """The member's tier, or the base tier a new member would start in."""
    if member is not None and member.tier_id is not None:
        return session.get(Tier, member.tier_id)
    return base_tier(session, workspace_id)


def notice_days(session: Session, workspace_id: int) -> int:
    """How far ahead "expiring soon" looks (the program's setting; read without creating a program)."""
    days = session.scalar(
        select(LoyaltyProgram.expiring_notice_days).where(LoyaltyProgram.workspace_id == workspace_id)
    )
    return DEFAULT_NOTICE_DAYS if days is None else int(days)


def available_points(session: Session, member: Member | None, *, clock: Clock) -> int:
    """Points the member can spend now: the balance less lots past their expiry that the daily job
    has not expired yet (a redemption would expire them first). The mall's own measure."""
    return spendable_points(session, member, clock)


@dataclass(frozen=True)
class ExpiringPoints:
    """Points that expire together, and the last brand-local day they can be spent."""

    points: int
    last_day: date


def expiring_points(session: Session, member: Member | None, *, days: int, clock: Clock) -> list[ExpiringPoints]:
    """Points expiring within `days`, per last valid day in brand time, soonest first."""
    if member is None:
        return []
    zone = brand_zone(session, member.workspace_id)
    by_day: dict[date, int] = {}
    for expires_at, points in expiring_soon(session, member=member, clock=clock, days=days):
        day = last_valid_day(expires_at, zone)
        by_day[day] = by_day.get(day, 0) + points
    return [ExpiringPoints(points=points, last_day=day) for day, points in by_day.items()]


def local_day(session: Session, workspace_id: int, clock: Clock) -> date:
    return clock.now().astimezone(brand_zone(session, workspace_id)).date()


def points_history(session: Session, *, member: Member | None, cursor: str | None) -> Page[PointsEntry]:
    """The member's points entries, newest first, `HISTORY_PAGE` at a time."""
    if member is None:
        return Page(items=[], next_cursor=None)
    query = select(PointsEntry).where(
        PointsEntry.workspace_id == member.workspace_id, PointsEntry.member_id == member.id
    )
    if cursor:
        query = query.where(PointsEntry.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(PointsEntry.id.desc()).limit(HISTORY_PAGE + 1)))
    more = len(rows) > HISTORY_PAGE
    rows = rows[:HISTORY_PAGE]
    return Page(items=rows, next_cursor=encode_cursor(rows[-1].id) if more and rows else None)


class CouponTab:
    UNUSED = "unused"
    USED = "used"
    EXPIRED = "expired"
    ALL = (UNUSED, USED, EXPIRED)


@dataclass(frozen=True)
class CouponView:
    coupon: Coupon
    template: CouponTemplate
    tab: str
    not_before: datetime | None = None
    """Set when the coupon is not usable yet (its validity starts later)."""


def coupon_tab(coupon: Coupon, now: datetime) -> str:
    """Unused (issued and not past expiry), used (redeemed), or expired (expired, void, or past expiry)."""
    if coupon.state == CouponState.REDEEMED:
        return CouponTab.USED
    if coupon.state == CouponState.ISSUED and (coupon.expires_at is None or as_utc(coupon.expires_at) > now):
        return CouponTab.UNUSED
    return CouponTab.EXPIRED


def member_coupons(
    session: Session, *, workspace_id: int, customer_id: int, tab: str, clock: Clock
) -> tuple[list[CouponView], dict[str, int]]:
    """The customer's coupons in one tab (soonest expiry first for unused, newest first otherwise),
    and how many each tab holds."""
    now = clock.now()
    rows = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .where(Coupon.workspace_id == workspace_id, Coupon.customer_id == customer_id)
        .order_by(Coupon.id.desc())
    ).all()
    views = [
        CouponView(
            coupon=c,
            template=t,
            tab=coupon_tab(c, now),
            not_before=c.valid_from if c.valid_from is not None and as_utc(c.valid_from) > now else None,
        )
        for c, t in rows
    ]
    counts = {name: sum(1 for v in views if v.tab == name) for name in CouponTab.ALL}
    chosen = [v for v in views if v.tab == tab]
    if tab == CouponTab.UNUSED:
        far = datetime.max.replace(tzinfo=now.tzinfo)
        chosen.sort(key=lambda v: as_utc(v.coupon.expires_at) if v.coupon.expires_at else far)
    return chosen, counts


def unused_coupon_count(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Coupon.workspace_id == workspace_id,
                Coupon.customer_id == customer_id,
                Coupon.state == CouponState.ISSUED,
                or_(Coupon.expires_at.is_(None), Coupon.expires_at > clock.now()),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class RedemptionView:
    redemption: Redemption
    reward: Reward
    coupon: Coupon | None


def member_redemptions(session: Session, *, member: Member | None) -> list[RedemptionView]:
    """The member's redemptions, newest first, with the reward and any coupon they gave."""
    if member is None:
        return []
    rows = session.execute(
        select(Redemption, Reward, Coupon)
        .join(Reward, Reward.id == Redemption.reward_id)
        .outerjoin(Coupon, and_(Coupon.id == Redemption.coupon_id))
        .where(Redemption.workspace_id == member.workspace_id, Redemption.member_id == member.id)
        .order_by(Redemption.id.desc())
        .limit(200)
    ).all()
    return [RedemptionView(redemption=r, reward=w, coupon=c) for r, w, c in rows]


def week_days(today: date) -> list[date]:
    """Monday to Sunday of the week holding `today`."""
    monday = today - timedelta(days=today.weekday())
    return [monday + timedelta(days=i) for i in range(7)]


def checked_in_days(session: Session, *, member: Member | None, days: list[date]) -> set[date]:
    """Which of `days` the member checked in on (check-in completions are keyed by brand-local day)."""
    if member is None or not days:
        return set()
    keys = {d.isoformat(): d for d in days}
    rows = session.scalars(
        select(TaskCompletion.period_key)
        .join(LoyaltyTask, LoyaltyTask.id == TaskCompletion.task_id)
        .where(
            TaskCompletion.workspace_id == member.workspace_id,
            TaskCompletion.member_id == member.id,
            LoyaltyTask.kind == TaskKind.CHECK_IN,
            TaskCompletion.period_key.in_(list(keys)),
        )
    )
    return {keys[key] for key in rows if key in keys}


def check_in_task(session: Session, workspace_id: int) -> LoyaltyTask | None:
    """The workspace's active daily check-in task (key `check_in`), if any."""
    return session.scalar(
        select(LoyaltyTask).where(
            LoyaltyTask.workspace_id == workspace_id, LoyaltyTask.key == CHECK_IN_KEY, LoyaltyTask.is_active.is_(True)
        )
    )


def check_in_points_since(session: Session, *, member: Member | None, since: datetime) -> int:
    """Points the member earned by checking in (task points and streak bonuses) since `since`."""
    if member is None:
        return 0
    total = session.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.member_id == member.id,
            PointsEntry.reason == PointsReason.CHECK_IN,
            PointsEntry.occurred_at >= since,
        )
    )
    return int(total or 0)


def zone_of(session: Session, workspace_id: int) -> ZoneInfo:
    return brand_zone(session, workspace_id)
