"""Concurrent issuing never oversells: real commits from separate threads (own connections) on the
shared test database, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, delete, func, select

from siyu.commerce.coupons.issuing import issue_coupon
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Coupon, CouponTemplate, Workspace
from tests.commerce.coupons.factories import buyer, make_template
from tests.conftest import NOW
from tests.factories import make_workspace


@pytest.fixture
def database(engine: Engine) -> Iterator[Database]:
    """Real commits on the shared test database; the workspaces made here are deleted after."""
    database = Database(Settings(database_url="sqlite://"), engine=engine)
    with database.session() as session:
        before = set(session.scalars(select(Workspace.id)))
    yield database
    with database.transaction() as session:
        session.execute(delete(Workspace).where(Workspace.id.not_in(before)))


def _run_together(jobs: list[Callable[[], None]]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
            result = "issued"
        except Exception as exc:  # counted and asserted on below
            result = type(exc).__name__
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


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
    outcomes = _run_together([_issuer(database, workspace_id, template_id, cid, f"k{cid}") for cid in ids])
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
    outcomes = _run_together(jobs)
    # then the customer holds exactly 3, in slots 1–3
    with database.session() as session:
        slots = sorted(session.scalars(select(Coupon.slot).where(Coupon.template_id == template_id)))
    assert slots == [1, 2, 3]
    assert outcomes["issued"] + outcomes["CouponLimitReached"] == 12
