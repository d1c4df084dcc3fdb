"""KPI planner (目标拆解): a pool and GMV target broken down by month, then checked against actuals.

For months k = 1..n (d = monthly deletion rate in people: customers who left ÷ pool at month start;
f = first-order conversion of new members, r = repurchase rate within a year, AOV):

    pool_k        = start + (target − start) × k / n           (straight path, rounded)
    deletions_k   = d × pool_{k−1}
    adds_k        = pool_k − pool_{k−1} + deletions_k            (never below 0)
    new_buyers_k  = f × adds_k
    buyers_k      = buyers_{k−1} × (1 − d) + new_buyers_k        (buyers_0 = buyers in the pool now)
    repeat_k      = buyers_{k−1} × r / 12
    model_gmv_k   = (new_buyers_k + repeat_k) × AOV

The GMV target is then spread over the months in proportion to model_gmv_k (evenly when the model
gives 0) and rounded so the months add up to the target exactly; planned orders = GMV_k ÷ AOV.
`scale` = target ÷ Σ model_gmv says how far the target is from what the assumptions give.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.periods import add_months, brand_today, utc_start, workspace_zone
from siyu.analytics.planning.history import monthly_figures
from siyu.analytics.tables import Kind, ReportTable, columns, ratio
from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound
from siyu.models import KpiPlan

MAX_MONTHS = 36
FIRST_PLAN_MONTH = date(2000, 1, 1)
LAST_PLAN_MONTH = date(2100, 12, 1)
MAX_POOL = 2_147_483_647
"""Pool figures are 32-bit integer columns."""
MAX_FEN = 10**15
"""Ten trillion yuan: money above this is a typo, and stays exact in a float."""
RATE_FIELDS = ("monthly_deletion_rate", "first_order_rate", "repurchase_rate")
METRICS = ("adds", "pool", "orders", "gmv_fen")


@dataclass(frozen=True)
class PlanInput:
    """A plan as entered (money in fen, months as their first day)."""

    name: str
    first_month: date
    last_month: date
    start_pool: int
    target_pool: int
    target_gmv_fen: int
    monthly_deletion_rate: float
    first_order_rate: float
    repurchase_rate: float
    aov_fen: int
    start_buyers: int = 0


def parse_month(text: str | None, field: str) -> date:
    """ "2026-12" (or a full date) → 2026-12-01; `InvalidInput` naming `field` otherwise."""
    value = (text or "").strip()
    try:
        if len(value) == 7:
            month = date.fromisoformat(value + "-01")
        elif len(value) <= 10:
            month = date.fromisoformat(value).replace(day=1)
        else:
            raise ValueError(value)
    except ValueError:
        raise InvalidInput(f"{field} must be a month like 2026-12", details={"field": field}) from None
    _check_month(month, field)
    return month


def _check_month(month: date, field: str) -> None:
    if not FIRST_PLAN_MONTH <= month <= LAST_PLAN_MONTH:
        raise InvalidInput(f"{field} must be between 2000-01 and 2100-12", details={"field": field})


def validate(plan: PlanInput) -> None:
    """Field errors: name, months 2000-01..2100-12 in order and at most 36, pools 0..2^31−1, money
    positive and at most 10^15 fen, rates 0–1."""
    if not plan.name.strip() or len(plan.name.strip()) > 100:
        raise InvalidInput("name must be 1–100 characters", details={"field": "name"})
    _check_month(plan.first_month, "first_month")
    _check_month(plan.last_month, "last_month")
    if plan.last_month < plan.first_month:
        raise InvalidInput("last month must be on or after the first month", details={"field": "last_month"})
    if month_count(plan.first_month, plan.last_month) > MAX_MONTHS:
        raise InvalidInput(f"a plan covers at most {MAX_MONTHS} months", details={"field": "last_month"})
    for name in ("target_pool", "target_gmv_fen", "aov_fen"):
        if getattr(plan, name) <= 0:
            raise InvalidInput(f"{name} must be positive", details={"field": name})
    for name in ("start_pool", "start_buyers"):
        if getattr(plan, name) < 0:
            raise InvalidInput(f"{name} cannot be negative", details={"field": name})
    for name in ("start_pool", "target_pool", "start_buyers"):
        if getattr(plan, name) > MAX_POOL:
            raise InvalidInput(f"{name} must be at most {MAX_POOL}", details={"field": name})
    for name in ("target_gmv_fen", "aov_fen"):
        if getattr(plan, name) > MAX_FEN:
            raise InvalidInput(f"{name} must be at most {MAX_FEN} fen", details={"field": name})
    for name in RATE_FIELDS:
        if not 0 <= getattr(plan, name) <= 1:
            raise InvalidInput(f"{name} must be between 0 and 1", details={"field": name})


def month_count(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month + 1


def _spread(total: int, weights: list[float]) -> list[int]:
    """Integers in proportion to `weights` adding up to `total` exactly (largest remainders)."""
    exact = [Fraction(w) for w in weights]
    if sum(exact) <= 0:
        exact = [Fraction(1)] * len(weights)
    whole = sum(exact)
    raw = [total * w / whole for w in exact]
    parts = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def decompose(plan: PlanInput) -> tuple[list[dict[str, Any]], float | None]:
    """The months of the plan (see the module docstring) and the GMV scale against the model."""
    n = month_count(plan.first_month, plan.last_month)
    d, f, r = plan.monthly_deletion_rate, plan.first_order_rate, plan.repurchase_rate
    pool_prev = float(plan.start_pool)
    buyers_prev = float(plan.start_buyers)
    months: list[dict[str, Any]] = []
    model: list[float] = []
    for k in range(1, n + 1):
        pool = round(plan.start_pool + (plan.target_pool - plan.start_pool) * k / n)
        deletions = d * pool_prev
        adds = max(0.0, pool - pool_prev + deletions)
        new_buyers = f * adds
        repeat = buyers_prev * r / 12
        buyers_prev = buyers_prev * (1 - d) + new_buyers
        model.append((new_buyers + repeat) * plan.aov_fen)
        months.append(
            {
                "month": add_months(plan.first_month, k - 1).isoformat(),
                "pool": pool,
                "deletions": round(deletions),
                "adds": round(adds),
                "new_buyers": round(new_buyers, 2),
                "repeat_orders": round(repeat, 2),
            }
        )
        pool_prev = pool
    gmv = _spread(plan.target_gmv_fen, model)
    for month, fen in zip(months, gmv, strict=True):
        month["gmv_fen"] = fen
        month["orders"] = round(fen / plan.aov_fen)
    total_model = sum(model)
    return months, (round(plan.target_gmv_fen / total_model, 4) if total_model > 0 else None)


def create_plan(session: Session, *, actor: Actor, plan: PlanInput, clock: Clock) -> KpiPlan:
    """Validate, decompose and save a plan (names are unique in the workspace)."""
    actor.require(Scope.ANALYTICS_WRITE)
    validate(plan)
    name = plan.name.strip()
    taken = session.scalar(select(KpiPlan.id).where(KpiPlan.workspace_id == actor.workspace_id, KpiPlan.name == name))
    if taken is not None:
        raise Conflict("a plan with this name exists", details={"field": "name"})
    months, scale = decompose(plan)
    now = clock.now()
    row = KpiPlan(
        workspace_id=actor.workspace_id,
        name=name,
        first_month=plan.first_month,
        last_month=plan.last_month,
        start_pool=plan.start_pool,
        target_pool=plan.target_pool,
        target_gmv_fen=plan.target_gmv_fen,
        assumptions={
            "monthly_deletion_rate": plan.monthly_deletion_rate,
            "first_order_rate": plan.first_order_rate,
            "repurchase_rate": plan.repurchase_rate,
            "aov_fen": plan.aov_fen,
            "start_buyers": plan.start_buyers,
            "gmv_scale": scale,
        },
        months=months,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    record(
        session,
        actor,
        action="kpi_plan.create",
        entity_type="kpi_plan",
        entity_id=row.id,
        clock=clock,
        after={"name": name, "target_pool": plan.target_pool, "target_gmv_fen": plan.target_gmv_fen},
    )
    return row


def list_plans(session: Session, *, actor: Actor) -> list[KpiPlan]:
    actor.require(Scope.ANALYTICS_READ)
    return list(
        session.scalars(
            select(KpiPlan)
            .where(KpiPlan.workspace_id == actor.workspace_id)
            .order_by(KpiPlan.created_at.desc(), KpiPlan.id.desc())
        )
    )


def get_plan(session: Session, *, actor: Actor, plan_id: int) -> KpiPlan:
    actor.require(Scope.ANALYTICS_READ)
    plan = session.get(KpiPlan, plan_id)
    if plan is None or plan.workspace_id != actor.workspace_id:
        raise NotFound("no such KPI plan", details={"field": "plan_id"})
    return plan


def delete_plan(session: Session, *, actor: Actor, plan_id: int, clock: Clock) -> None:
    actor.require(Scope.ANALYTICS_WRITE)
    plan = get_plan(session, actor=actor, plan_id=plan_id)
    record(
        session,
        actor,
        action="kpi_plan.delete",
        entity_type="kpi_plan",
        entity_id=plan.id,
        clock=clock,
        before={"name": plan.name},
    )
    session.delete(plan)
    session.flush()


@dataclass
class MonthProgress:
    """One month of a plan: planned figures, actual figures and how far behind."""

    month: date
    state: str
    """"done" (month over), "current" or "future"."""
    plan: dict[str, int]
    actual: dict[str, int | None]
    behind: dict[str, tuple[int, float | None]]
    """For a finished month: metric → (shortfall, shortfall ÷ plan) where actual < plan."""
    pace: dict[str, float | None]
    """For the current month: actual ÷ (plan × share of the month gone); pool: actual ÷ plan."""


@dataclass
class PlanProgress:
    plan: KpiPlan
    months: list[MonthProgress]
    as_of: date

    @property
    def behind_months(self) -> list[MonthProgress]:
        return [m for m in self.months if m.behind]


def plan_progress(session: Session, *, actor: Actor, plan_id: int, clock: Clock) -> PlanProgress:
    """The plan with actual adds, pool at month end, orders and GMV per month (same tables as history)."""
    plan = get_plan(session, actor=actor, plan_id=plan_id)
    zone = workspace_zone(session, actor.workspace_id)
    now: datetime = clock.now()
    today = brand_today(session, actor.workspace_id, clock)
    this_month = today.replace(day=1)
    last_actual = min(plan.last_month, this_month)
    figures = {
        f.month: f
        for f in (
            monthly_figures(
                session, workspace_id=actor.workspace_id, zone=zone, first=plan.first_month, last=last_actual, now=now
            )
            if plan.first_month <= this_month
            else []
        )
    }
    result = []
    for entry in plan.months:
        month = date.fromisoformat(entry["month"])
        planned = {
            "adds": int(entry["adds"]),
            "deletions": int(entry["deletions"]),
            "pool": int(entry["pool"]),
            "orders": int(entry["orders"]),
            "gmv_fen": int(entry["gmv_fen"]),
        }
        f = figures.get(month)
        state = "done" if month < this_month else "current" if month == this_month else "future"
        actual: dict[str, int | None] = (
            {"adds": f.adds, "deletions": f.deletions, "pool": f.pool_end, "orders": f.orders, "gmv_fen": f.gmv_fen}
            if f is not None
            else dict.fromkeys(("deletions", *METRICS))
        )
        behind: dict[str, tuple[int, float | None]] = {}
        pace: dict[str, float | None] = {}
        if state == "done":
            for key in METRICS:
                value = actual[key] or 0
                if value < planned[key]:
                    behind[key] = (planned[key] - value, ratio(planned[key] - value, planned[key]))
        elif state == "current":
            next_start = utc_start(add_months(month, 1), zone)
            month_start = utc_start(month, zone)
            gone = (now - month_start) / (next_start - month_start)
            for key in METRICS:
                value = actual[key] or 0
                pace[key] = ratio(value, planned[key]) if key == "pool" else ratio(value, planned[key] * gone)
        result.append(MonthProgress(month, state, planned, actual, behind, pace))
    return PlanProgress(plan, result, today)


METRIC_LABELS = {"adds": "添加", "pool": "月末人数", "orders": "订单", "gmv_fen": "GMV"}
STATE_LABELS = {"done": "已结束", "current": "本月", "future": "未开始"}


def progress_table(progress: PlanProgress) -> ReportTable:
    """Plan vs actual per month (export of the plan page), with the same "behind" flags as the page:
    for a finished month, each figure's shortfall and shortfall ÷ plan where actual < plan (blank
    otherwise), and the figures behind in one text column. Deletions (people who left the pool) are
    shown planned and actual, not flagged."""
    table = ReportTable(
        f"目标拆解 {progress.plan.name}",
        columns(
            ("month", "月份", Kind.DATE),
            ("state", "状态", Kind.TEXT),
            ("plan_adds", "计划添加", Kind.INT),
            ("adds", "实际添加", Kind.INT),
            ("plan_deletions", "计划删除", Kind.INT),
            ("deletions", "实际删除", Kind.INT),
            ("plan_pool", "计划月末人数", Kind.INT),
            ("pool", "实际月末人数", Kind.INT),
            ("plan_orders", "计划订单", Kind.INT),
            ("orders", "实际订单", Kind.INT),
            ("plan_gmv", "计划 GMV", Kind.FEN),
            ("gmv", "实际 GMV", Kind.FEN),
            ("behind", "落后", Kind.TEXT),
            ("adds_shortfall", "添加缺口", Kind.INT),
            ("adds_shortfall_share", "添加缺口占计划", Kind.RATE),
            ("pool_shortfall", "月末人数缺口", Kind.INT),
            ("pool_shortfall_share", "月末人数缺口占计划", Kind.RATE),
            ("orders_shortfall", "订单缺口", Kind.INT),
            ("orders_shortfall_share", "订单缺口占计划", Kind.RATE),
            ("gmv_shortfall", "GMV 缺口", Kind.FEN),
            ("gmv_shortfall_share", "GMV 缺口占计划", Kind.RATE),
        ),
    )
    for m in progress.months:
        row: dict[str, Any] = {
            "month": m.month,
            "state": STATE_LABELS[m.state],
            "plan_adds": m.plan["adds"],
            "adds": m.actual["adds"],
            "plan_deletions": m.plan["deletions"],
            "deletions": m.actual["deletions"],
            "plan_pool": m.plan["pool"],
            "pool": m.actual["pool"],
            "plan_orders": m.plan["orders"],
            "orders": m.actual["orders"],
            "plan_gmv": m.plan["gmv_fen"],
            "gmv": m.actual["gmv_fen"],
            "behind": "、".join(METRIC_LABELS[key] for key in METRICS if key in m.behind) or None,
        }
        for key in METRICS:
            prefix = "gmv" if key == "gmv_fen" else key
            gap, share = m.behind.get(key, (None, None))
            row[f"{prefix}_shortfall"], row[f"{prefix}_shortfall_share"] = gap, share
        table.rows.append(row)
    return table


def plan_json(plan: KpiPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "first_month": plan.first_month.isoformat(),
        "last_month": plan.last_month.isoformat(),
        "start_pool": plan.start_pool,
        "target_pool": plan.target_pool,
        "target_gmv_fen": plan.target_gmv_fen,
        "assumptions": plan.assumptions,
        "months": plan.months,
        "created_by": plan.created_by,
        "created_at": plan.created_at.isoformat(),
    }


def progress_json(progress: PlanProgress) -> dict[str, Any]:
    body = plan_json(progress.plan)
    body["as_of"] = progress.as_of.isoformat()
    body["progress"] = [
        {
            "month": m.month.isoformat(),
            "state": m.state,
            "plan": m.plan,
            "actual": m.actual,
            "behind": {k: {"shortfall": v[0], "share": v[1]} for k, v in m.behind.items()},
            "pace": m.pace,
        }
        for m in progress.months
    ]
    return body
