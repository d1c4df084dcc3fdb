"""Drill-downs of the overview: the customers behind a stat card, recomputed on the server."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from siyu.analytics.drill import segment_from_ids
from siyu.analytics.overview import sql
from siyu.analytics.overview.schemas import Filters, Metric
from siyu.analytics.overview.scope import build_scope
from siyu.analytics.overview.service import _real_add, _real_deletion
from siyu.analytics.periods import Period, local_day, workspace_zone
from siyu.auth.permissions import Actor
from siyu.auth.permissions import Scope as Perm
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Order, Relationship, RemovedBy, Segment

NAMES = {
    Metric.POOL: "私域池",
    Metric.WECOM: "企微好友",
    Metric.GROUP: "群成员",
    Metric.OFFICIAL_ACCOUNT: "公众号关注",
    Metric.SMS: "短信可触达",
    Metric.ADDS: "新增好友",
    Metric.DELETED_BY_CUSTOMER: "删粉客户",
    Metric.DELETED_BY_STAFF: "被员工删除",
    Metric.FIRST_ORDERS: "首单客户",
    Metric.REPURCHASES: "复购客户",
    Metric.GMV: "私域下单客户",
    Metric.ACTIVE: "活跃会员",
    Metric.CONVERTED: "首单转化客户",
}

_KINDS = {
    Metric.WECOM: sql.KIND_WECOM,
    Metric.GROUP: sql.KIND_GROUP,
    Metric.OFFICIAL_ACCOUNT: sql.KIND_OFFICIAL_ACCOUNT,
    Metric.SMS: sql.KIND_SMS,
}


def parse_metric(text: str | None) -> Metric:
    try:
        return Metric((text or "").strip())
    except ValueError:
        raise InvalidInput("unknown metric", details={"field": "metric"}) from None


def customers_behind(
    session: Session, *, actor: Actor, metric: Metric, period: Period, filters: Filters, clock: Clock
) -> list[int]:
    """The ids of the customers a stat card counts for `period` (distinct, sorted)."""
    actor.require(Perm.ANALYTICS_READ)
    scope = build_scope(session, actor=actor, filters=filters, clock=clock)
    zone = workspace_zone(session, actor.workspace_id)
    lo, hi = period.utc_bounds(zone)
    statement: Any
    if metric == Metric.POOL or metric in _KINDS:
        iv = sql.pool_intervals(scope)
        cond: ColumnElement[bool] = sql.open_at(iv.c.start, iv.c.stop, hi)
        if metric in _KINDS:
            cond = and_(cond, iv.c.kind == _KINDS[metric])
        statement = select(iv.c.cid).where(cond)
    elif metric == Metric.ADDS:
        statement = select(Relationship.customer_id).where(
            scope.edge_condition(), sql.in_range(Relationship.added_at, lo, hi), _real_add()
        )
    elif metric in (Metric.DELETED_BY_CUSTOMER, Metric.DELETED_BY_STAFF):
        who = Relationship.removed_by == RemovedBy.CUSTOMER
        statement = select(Relationship.customer_id).where(
            scope.edge_condition(),
            sql.in_range(Relationship.removed_at, lo, hi),
            _real_deletion(),
            who if metric == Metric.DELETED_BY_CUSTOMER else ~who | Relationship.removed_by.is_(None),
        )
    elif metric in (Metric.FIRST_ORDERS, Metric.REPURCHASES, Metric.GMV):
        extra = {
            Metric.FIRST_ORDERS: Order.pool_sequence == 1,
            Metric.REPURCHASES: Order.pool_sequence >= 2,
            Metric.GMV: Order.pool_sequence.is_not(None),
        }[metric]
        statement = select(Order.customer_id).where(
            *sql.counted_orders(scope), sql.in_range(Order.paid_at, lo, hi), extra
        )
    elif metric == Metric.ACTIVE:
        act = sql.activity(session, scope, lo, hi, lambda c: local_day(session, c, zone, clock.now()))
        statement = select(act.c.cid)
    else:  # CONVERTED: the same grouped subqueries as the rate
        held = sql.held_by_staff(scope, earlier=lo, later=hi)
        firsts = sql.first_orders(scope, lo, lo, hi)
        statement = (
            select(held.c.cid)
            .join(firsts, firsts.c.cid == held.c.cid)
            .where(held.c.cur == 1, firsts.c.cur == 1, held.c.cid.in_(scope.customers))
        )
    return sorted({int(x) for x in session.scalars(statement)})


def drill_segment(
    session: Session, *, actor: Actor, metric: Metric, period: Period, filters: Filters, clock: Clock
) -> tuple[Segment, int]:
    """A static segment of the customers behind `metric`; returns it and its member count."""
    actor.require(Perm.ANALYTICS_WRITE)
    ids = customers_behind(session, actor=actor, metric=metric, period=period, filters=filters, clock=clock)
    name = f"{NAMES[metric]} {period.start.isoformat()}~{period.end.isoformat()}"
    segment = segment_from_ids(
        session,
        actor=actor,
        name=name,
        customer_ids=ids,
        source=f"analytics:overview:{metric}",
        clock=clock,
        description=f"经营概览 {metric} {period.start.isoformat()}~{period.end.isoformat()} {filters.as_params()}",
    )
    return segment, len(ids)
