"""Segment conditions on loyalty state: tier, points balance, expiring points, coupons, first order,
repurchase — parsing, validation and exact member sets (both databases), including non-members."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import (
    Coupon,
    CouponKind,
    CouponState,
    CouponTemplate,
    Customer,
    Member,
    PointsEntry,
    PointsLot,
    Tier,
    Workspace,
)
from siyu.segments.definition import DefinitionError, parse_definition
from siyu.segments.query import customer_matches, members_select
from siyu.segments.validation import validate_definition
from tests.conftest import NOW
from tests.factories import make_workspace
from tests.segments.factories import make_person

UNSCOPED = {"siyu_unscoped": True}
DAY = timedelta(days=1)


class Loyal:
    """Customers labelled a…f with members, lots and coupons laid out for the conditions below."""

    def __init__(self, db: Session, ws: Workspace) -> None:
        self.db, self.ws = db, ws
        self.who: dict[str, Customer] = {}
        self.tiers = {
            name: self._add(
                Tier(workspace_id=ws.id, name=name, rank=rank, threshold=rank * 1000, created_at=NOW, updated_at=NOW)
            )
            for rank, name in enumerate(["普通", "高级", "尊享"])
        }
        self.template = self._add(
            CouponTemplate(
                workspace_id=ws.id,
                name="满100减20",
                kind=CouponKind.AMOUNT_OFF,
                value=2000,
                created_at=NOW,
                updated_at=NOW,
            )
        )

    def _add(self, row: Any) -> Any:
        self.db.add(row)
        self.db.flush()
        return row

    def member(
        self,
        label: str,
        *,
        tier: str | None = None,
        balance: int = 0,
        first_order: bool = False,
        repurchaser: bool = False,
    ) -> Member:
        customer = make_person(self.db, workspace=self.ws, created_at=NOW - 100 * DAY)
        self.who[label] = customer
        if tier is None and not balance and not first_order:
            return None  # type: ignore[return-value]
        return self._add(
            Member(
                workspace_id=self.ws.id,
                customer_id=customer.id,
                tier_id=self.tiers[tier].id if tier else None,
                points_balance=balance,
                first_order_id=1 if first_order else None,
                first_order_at=NOW - 10 * DAY if first_order else None,
                is_repurchaser=repurchaser,
                orders_count=2 if repurchaser else (1 if first_order else 0),
                created_at=NOW,
                updated_at=NOW,
            )
        )

    def lot(self, member: Member, *, remaining: int, expires_in: timedelta | None) -> None:
        entry = self._add(
            PointsEntry(
                workspace_id=self.ws.id,
                member_id=member.id,
                amount=remaining,
                kind="earn",
                reason="purchase",
                description="消费得积分",
                idempotency_key=f"e{member.id}:{remaining}:{expires_in}",
                balance_after=remaining,
                occurred_at=NOW - DAY,
            )
        )
        self._add(
            PointsLot(
                workspace_id=self.ws.id,
                member_id=member.id,
                entry_id=entry.id,
                amount=remaining,
                remaining=remaining,
                earned_at=NOW - DAY,
                expires_at=None if expires_in is None else NOW + expires_in,
            )
        )

    def coupon(self, label: str, state: CouponState, *, expires_in: timedelta | None = 10 * DAY) -> None:
        n = len(self.db.info.setdefault("coupons", []))
        self.db.info["coupons"].append(n)
        self._add(
            Coupon(
                workspace_id=self.ws.id,
                template_id=self.template.id,
                customer_id=self.who[label].id,
                code=f"ABCDEFGH{n:02d}",
                slot=n + 1,
                state=state,
                source="test",
                idempotency_key=f"c{n}",
                issued_at=NOW - DAY,
                valid_from=NOW - DAY,
                expires_at=None if expires_in is None else NOW + expires_in,
            )
        )

    def members(self, definition: dict[str, Any]) -> set[str]:
        node = validate_definition(self.db, workspace_id=self.ws.id, raw=definition)
        ids = set(
            self.db.scalars(
                members_select(self.db, workspace_id=self.ws.id, definition=node, now=NOW), execution_options=UNSCOPED
            )
        )
        labels = {label for label, c in self.who.items() if c.id in ids}
        for label, customer in self.who.items():  # the one-customer evaluation agrees
            one = customer_matches(self.db, workspace_id=self.ws.id, node=node, customer_id=customer.id, now=NOW)
            assert one == (label in labels), label
        return labels


@pytest.fixture
def loyal(db: Session, clock: FrozenClock) -> Loyal:
    # given: a (普通, 100 points, 80 expiring in 5 days, 20 in 60 days), b (高级, 600, first order),
    # c (尊享, 1500, repurchaser; an unused coupon),
    # e (高级, 0 points; a redeemed and an expired coupon), f (no member row)
    pool = Loyal(db, make_workspace(db, clock=clock))
    a = pool.member("a", tier="普通", balance=100)
    pool.lot(a, remaining=80, expires_in=5 * DAY)
    pool.lot(a, remaining=20, expires_in=60 * DAY)
    b = pool.member("b", tier="高级", balance=600, first_order=True)
    pool.lot(b, remaining=600, expires_in=None)
    c = pool.member("c", tier="尊享", balance=1500, first_order=True, repurchaser=True)
    pool.lot(c, remaining=1000, expires_in=29 * DAY)
    pool.lot(c, remaining=0, expires_in=3 * DAY)
    pool.member("e", tier="高级")
    pool.member("f")
    pool.coupon("c", CouponState.ISSUED)
    pool.coupon("e", CouponState.REDEEMED)
    pool.coupon("e", CouponState.ISSUED, expires_in=-DAY)  # not yet swept by the expiry job: expired by time
    return pool


def test_tier_by_id_and_name_and_negated(loyal: Loyal) -> None:
    high = loyal.tiers["高级"].id
    assert loyal.members({"kind": "tier", "tier_ids": [high]}) == {"b", "e"}
    assert loyal.members({"kind": "tier", "tier_names": ["尊享", "普通"]}) == {"a", "c"}
    assert loyal.members({"kind": "tier", "tier_ids": [high], "member": False}) == {"a", "c", "f"}
    assert loyal.members({"not": {"kind": "tier", "tier_names": ["高级"]}}) == {"a", "c", "f"}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gte", 600, {"b", "c"}),
        ("lt", 100, {"e", "f"}),  # non-members have 0 points
        ("eq", 0, {"e", "f"}),
        ("between", [100, 600], {"a", "b"}),
        ("at_least", 1, {"a", "b", "c"}),
    ],
)
def test_points_balance(loyal: Loyal, op: str, value: Any, expected: set[str]) -> None:
    assert loyal.members({"kind": "points_balance", "op": op, "value": value}) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"within_days": 7}, {"a"}),  # c's 3-day lot is used up
        ({"within_days": 30}, {"a", "c"}),
        ({"within_days": 30, "op": "gte", "value": 100}, {"c"}),
        ({"within_days": 90, "op": "gte", "value": 100}, {"a", "c"}),
        ({"within_days": 7, "op": "lt", "value": 50}, {"b", "c", "e", "f"}),  # nothing expiring counts 0
    ],
)
def test_points_expiring(loyal: Loyal, definition: dict[str, Any], expected: set[str]) -> None:
    assert loyal.members({"kind": "points_expiring", **definition}) == expected


def test_coupon_states(loyal: Loyal) -> None:
    template = loyal.template.id
    assert loyal.members({"kind": "coupon", "template_ids": [template]}) == {"c"}  # unused by default
    assert loyal.members({"kind": "coupon", "state": "redeemed"}) == {"e"}
    assert loyal.members({"kind": "coupon", "state": "any"}) == {"c", "e"}
    assert loyal.members({"kind": "coupon", "has": False}) == {"a", "b", "e", "f"}


def test_first_order_and_repurchaser(loyal: Loyal) -> None:
    assert loyal.members({"kind": "first_order"}) == {"b", "c"}
    assert loyal.members({"kind": "first_order", "value": False}) == {"a", "e", "f"}
    assert loyal.members({"kind": "repurchaser"}) == {"c"}
    assert loyal.members({"all": [{"kind": "first_order"}, {"not": {"kind": "repurchaser"}}]}) == {"b"}


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"kind": "tier"}, "$.tier_ids"),
        ({"kind": "tier", "tier_ids": [0]}, "$.tier_ids[0]"),
        ({"kind": "points_balance", "op": "gte", "value": 1.5}, "$.value"),
        ({"kind": "points_balance", "op": "most", "value": 1}, "$.op"),
        ({"kind": "points_expiring", "op": "gte", "value": 1}, "$.within_days"),
        ({"kind": "points_expiring", "within_days": 0}, "$.within_days"),
        ({"kind": "coupon", "state": "lost"}, "$.state"),
        ({"kind": "first_order", "value": "yes"}, "$.value"),
        ({"kind": "repurchaser", "extra": 1}, "$.extra"),
    ],
)
def test_bad_definitions_name_the_path(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(raw)
    assert caught.value.path == path


def test_unknown_tier_and_template_are_refused(loyal: Loyal) -> None:
    with pytest.raises(DefinitionError) as by_name:
        validate_definition(loyal.db, workspace_id=loyal.ws.id, raw={"kind": "tier", "tier_names": ["黑卡"]})
    with pytest.raises(DefinitionError) as by_template:
        validate_definition(loyal.db, workspace_id=loyal.ws.id, raw={"kind": "coupon", "template_ids": [10**9]})
    assert (by_name.value.path, by_template.value.path) == ("$.tier_names[0]", "$.template_ids[0]")
