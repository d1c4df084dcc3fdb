"""Concurrent issuing never oversells: real commits from separate threads (own connections) on the
shared test database, SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sqlalchemy import func, select

from siyu.commerce.coupons.issuing import issue_coupon
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Coupon, CouponTemplate
from tests.commerce.coupons.factories import buyer, make_template
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import make_workspace


def _issuer(database: Database, workspace_id: int, template_id: int, customer_id: int, key: str) -> Callable[[], None]:
    clock = FrozenClock(NOW)

    def run() -> None:
        with database.transaction() as session:
            issue_coupon(
                session,
                workspace_id=workspace_id,
                template_id=template_id,
                customer_id=customer_id,
                source="api",
                idempotency_key=key,
                clock=clock,
            )

    return run


def test_stock_of_ten_with_thirty_concurrent_issues_gives_exactly_ten(database: Database) -> None:
    # given a template with a stock of 10 and 30 customers
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        template_id = make_template(session, workspace=ws, clock=clock, total_stock=10).id
        ids = [buyer(session, workspace=ws, clock=clock).id for _ in range(30)]
        workspace_id = ws.id
    # when all 30 are issued a coupon at once
    outcomes = Counter(
        outcome_names([_issuer(database, workspace_id, template_id, cid, f"k{cid}") for cid in ids], success="issued")
    )
    # then exactly 10 got one, 20 were told it is out of stock, and the count matches the rows
    assert outcomes == Counter({"issued": 10, "CouponOutOfStock": 20})
    with database.session() as session:
        rows = session.scalar(select(func.count()).select_from(Coupon).where(Coupon.template_id == template_id))
        template = session.get(CouponTemplate, template_id)
        assert template is not None
        assert (rows, template.issued_count) == (10, 10)


def test_one_customer_hammered_gets_exactly_the_limit_and_retries_collapse(database: Database) -> None:
    # given a limit of 3 per customer
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        template_id = make_template(session, workspace=ws, clock=clock, per_customer_limit=3).id
        customer_id = buyer(session, workspace=ws, clock=clock).id
        workspace_id = ws.id
    # when 8 different keys and 4 retries of one key race
    jobs = [_issuer(database, workspace_id, template_id, customer_id, f"k{i}") for i in range(8)]
    jobs += [_issuer(database, workspace_id, template_id, customer_id, "same") for _ in range(4)]
    outcomes = Counter(outcome_names(jobs, success="issued"))
    # then the customer holds exactly 3, in slots 1–3
    with database.session() as session:
        slots = sorted(session.scalars(select(Coupon.slot).where(Coupon.template_id == template_id)))
    assert slots == [1, 2, 3]
    assert outcomes["issued"] + outcomes["CouponLimitReached"] == 12
