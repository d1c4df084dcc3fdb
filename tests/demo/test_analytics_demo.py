"""The demo brand's measure pages: settings, saved funnels and cohort reports, a finished CLV fit
with its super-user segment, and a KPI plan, built through the analytics services."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.demo import build_demo
from siyu.demo.analytics import COHORT_REPORTS, FUNNELS, build_analytics
from siyu.demo.loyalty import build_loyalty
from siyu.kit.clock import FrozenClock
from siyu.models import (
    AnalyticsSettings,
    ClvFit,
    ClvFitStatus,
    CustomerValue,
    KpiPlan,
    ReportKind,
    SavedReport,
    Segment,
)

CUSTOMERS = 300


def test_the_demo_measure_pages_have_their_data(database: Database, clock: FrozenClock, db: Session) -> None:
    # given the demo brand with its loyalty history (which numbers the pool orders)
    assert build_demo(database, customers=CUSTOMERS, clock=clock) is True
    assert build_loyalty(database, clock=clock) is True

    # when its analytics are built
    assert build_analytics(database, clock=clock) is True

    # then the settings, the saved reports and a finished fit are there
    settings = db.scalars(select(AnalyticsSettings)).one()
    assert (settings.gross_margin_bp, settings.operating_cost_fen_per_member_month) == (5_500, 300)
    saved = {(r.kind, r.name) for r in db.scalars(select(SavedReport))}
    assert saved == {(ReportKind.FUNNEL, n) for n in FUNNELS} | {(ReportKind.RETENTION, n) for n in COHORT_REPORTS}
    fit = db.scalars(select(ClvFit)).one()
    assert fit.status == ClvFitStatus.DONE, fit.error
    values = db.scalar(select(func.count()).select_from(CustomerValue)) or 0
    assert values == fit.customers > 0
    supers = db.scalar(select(func.count()).select_from(CustomerValue).where(CustomerValue.is_super_user)) or 0
    assert supers == -(-fit.customers * 20 // 100)  # the top 20 %, rounded up
    assert db.scalars(select(Segment.name).where(Segment.definition.is_not(None))).all().count("超级用户") == 1
    # a plan from this month (2026-11) to June 2027: eight months
    plan = db.scalars(select(KpiPlan)).one()
    assert (plan.name, plan.first_month.isoformat(), plan.last_month.isoformat()) == (
        "2027 年 6 月目标",
        "2026-11-01",
        "2027-06-01",
    )
    assert len(plan.months) == 8
    assert sum(m["gmv_fen"] for m in plan.months) == plan.target_gmv_fen

    # and building again changes nothing
    assert build_analytics(database, clock=clock) is False
