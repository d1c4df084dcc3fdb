"""The hourly loyalty jobs over real transactions, and `siyu loyalty expire|review`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.db import Database, get_database, set_database
from siyu.kit.clock import FrozenClock, system_clock
from siyu.loyalty.members import ensure_member, get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.purchases import apply_order
from siyu.loyalty.tasks import expire_paid, review_tiers
from siyu.loyalty.tiers.service import buy_paid_tier
from siyu.migrate import upgrade
from siyu.models import LoyaltyProgram, PointsReason, ReviewPeriod
from tests.factories import make_workspace
from tests.loyalty.tiers.factories import make_ladder, make_program, new_customer, place_order


def test_review_and_paid_expiry_jobs_run_once_per_date(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a monthly-reviewed 高级 member (30-day window, no grace) and a 黑卡 holder
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, tier_window_days=30, review_period=ReviewPeriod.MONTHLY, grace_days=0)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    spender, card = new_customer(db, workspace=ws, clock=clock), new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=spender, clock=clock, total_fen=100_000), clock=clock)
    buy_paid_tier(
        db, workspace_id=ws.id, customer_id=card.id, tier_id=ladder.black.id, idempotency_key="k", clock=clock
    )
    db.commit()
    assert review_tiers(database, clock, workspace_id=ws.id)["reviewed"] == 0  # the baseline run
    # when the jobs run on 1 January 2027 (10:00 Shanghai) and again an hour later
    clock.set(datetime(2027, 1, 1, 2, tzinfo=UTC))
    first = review_tiers(database, clock, workspace_id=ws.id)
    clock.advance(timedelta(hours=1))
    second = review_tiers(database, clock, workspace_id=ws.id)
    # then the review ran once and moved the spender down; the card is still valid
    assert (first["reviewed"], first["downgraded"], second["reviewed"], second["downgraded"]) == (1, 1, 0, 0)
    program = db.scalars(select(LoyaltyProgram).where(LoyaltyProgram.workspace_id == ws.id)).one()
    db.refresh(program)
    assert program.last_review_on == date(2027, 1, 1)
    assert expire_paid(database, clock, workspace_id=ws.id)["ended"] == 0
    # and a year after the purchase the card ends
    clock.set(datetime(2027, 11, 24, 2, tzinfo=UTC))
    assert expire_paid(database, clock, workspace_id=ws.id)["ended"] == 1
    member = get_member(db, ws.id, card.id)
    assert member is not None
    db.refresh(member)
    assert (member.tier_id, member.paid_tier_id) == (ladder.base.id, None)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'loyalty.db'}")
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    set_database(None)
    yield CliRunner()
    get_database().engine.dispose()
    set_database(None)
    get_settings.cache_clear()


def test_the_cli_expires_due_points_and_reviews(cli: CliRunner) -> None:
    # given a member with 40 points that expired yesterday
    database = get_database()
    upgrade(database.engine)
    with Session(database.engine, expire_on_commit=False) as db, db.begin():
        ws = make_workspace(db, clock=system_clock, slug="brand")
        customer = new_customer(db, workspace=ws, clock=system_clock)
        member = ensure_member(db, workspace_id=ws.id, customer_id=customer.id, clock=system_clock)
        ledger.earn(
            db,
            member=member,
            points=40,
            reason=PointsReason.TASK,
            description="分享",
            idempotency_key="t1",
            clock=system_clock,
            expires_at=system_clock.now() - timedelta(days=1),
        )
    # when `siyu loyalty expire` runs twice and `siyu loyalty review` once
    first = cli.invoke(app, ["loyalty", "expire", "--workspace", "brand"])
    second = cli.invoke(app, ["loyalty", "expire"])
    review = cli.invoke(app, ["loyalty", "review", "-w", "brand"])
    # then the 40 points expired once and the review reported its counts
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["points"] == {"workspaces": 1, "entries": 1}
    assert json.loads(second.stdout)["points"]["entries"] == 0
    assert review.exit_code == 0 and json.loads(review.stdout)["workspaces"] == 1
    with Session(database.engine) as db:
        found = get_member(db, ws.id, customer.id)
        assert found is not None and found.points_balance == 0
