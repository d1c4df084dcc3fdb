"""Compiling the loyalty and commerce conditions (see `loyalty_conditions`), mixed into `SegmentCompiler`.

Same rules as the rest of the compiler: every predicate is two-valued, subqueries are uncorrelated
lists of customer ids, and a test that holds for customers with no rows at all (no member row, no
lots) is written as `NOT IN` the customers whose rows fail it, so non-members count as 0 points.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, not_, or_, select

from siyu.models import Coupon, CouponState, Member, PointsLot, Tier
from siyu.segments.loyalty_conditions import (
    CouponCondition,
    MemberFlagCondition,
    PointsBalanceCondition,
    PointsExpiringCondition,
    TierCondition,
)
from siyu.segments.semantics import compare

if TYPE_CHECKING:
    from siyu.segments.compiler import CompileScope


class LoyaltyConditions:
    """Methods `SegmentCompiler._predicate` dispatches to by the condition's class name."""

    scope: CompileScope

    if TYPE_CHECKING:

        def _member_of(self, subquery: Select[Any], positive: bool = True) -> ColumnElement[bool]: ...

        def _narrow(self, customer_column: Any) -> list[ColumnElement[bool]]: ...

        @staticmethod
        def _number(expr: Any, comparison: Any, scale: Any = None) -> ColumnElement[bool]: ...

    def _members(self, *clauses: ColumnElement[bool]) -> Select[Any]:
        return select(Member.customer_id).where(
            Member.workspace_id == self.scope.workspace_id, *clauses, *self._narrow(Member.customer_id)
        )

    def _TierCondition(self, node: TierCondition) -> ColumnElement[bool]:
        which = []
        if node.tier_ids:
            which.append(Member.tier_id.in_(node.tier_ids))
        if node.tier_names:
            named = select(Tier.id).where(Tier.workspace_id == self.scope.workspace_id, Tier.name.in_(node.tier_names))
            which.append(Member.tier_id.in_(named))
        return self._member_of(self._members(or_(*which)), node.member)

    def _PointsBalanceCondition(self, node: PointsBalanceCondition) -> ColumnElement[bool]:
        test = self._number(Member.points_balance, node.comparison)
        if compare(0, node.comparison):  # customers without a member row have 0 points and match
            return self._member_of(self._members(not_(test)), positive=False)
        return self._member_of(self._members(test))

    def _PointsExpiringCondition(self, node: PointsExpiringCondition) -> ColumnElement[bool]:
        now = self.scope.now
        rows = (
            select(Member.customer_id)
            .join(PointsLot, PointsLot.member_id == Member.id)
            .where(
                Member.workspace_id == self.scope.workspace_id,
                PointsLot.workspace_id == self.scope.workspace_id,
                PointsLot.remaining > 0,
                PointsLot.expires_at > now,
                PointsLot.expires_at <= now + timedelta(days=node.within_days),
                *self._narrow(Member.customer_id),
            )
            .group_by(Member.customer_id)
        )
        total = func.sum(PointsLot.remaining)
        if compare(0, node.comparison):
            return self._member_of(rows.having(not_(self._number(total, node.comparison))), positive=False)
        return self._member_of(rows.having(self._number(total, node.comparison)))

    def _CouponCondition(self, node: CouponCondition) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = [Coupon.workspace_id == self.scope.workspace_id]
        if node.template_ids is not None:
            clauses.append(Coupon.template_id.in_(node.template_ids))
        if node.state == "unused":
            now = self.scope.now
            clauses += [Coupon.state == CouponState.ISSUED, or_(Coupon.expires_at.is_(None), Coupon.expires_at > now)]
        elif node.state == "redeemed":
            clauses.append(Coupon.state == CouponState.REDEEMED)
        rows = select(Coupon.customer_id).where(*clauses, *self._narrow(Coupon.customer_id))
        return self._member_of(rows, node.has)

    def _MemberFlagCondition(self, node: MemberFlagCondition) -> ColumnElement[bool]:
        first = node.flag == "first_order"
        test = Member.first_order_id.is_not(None) if first else Member.is_repurchaser.is_(True)
        return self._member_of(self._members(test), node.value)
