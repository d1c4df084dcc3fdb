"""Demo measure (数字化): settings, saved funnels and cohort reports, a CLV fit with its super-user
segment, and a KPI plan, for the demo brand.

Runs last in `siyu demo` (after the community), through the analytics services only. Every figure
the pages show is then computed from the demo's customers, edges, events and orders, as for a real
brand. Returns False (and writes nothing) if the brand is missing or already has analytics settings.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics import saved
from siyu.analytics.clv.service import ensure_super_user_segment, run_fit
from siyu.analytics.funnels.service import save_funnel
from siyu.analytics.periods import brand_today
from siyu.analytics.planning.history import measure_history
from siyu.analytics.planning.kpi import create_plan
from siyu.analytics.planning.service import plan_input
from siyu.analytics.settings import update_settings
from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.models import AnalyticsSettings, ReportKind, Workspace
from siyu.workspaces.scope import bind_workspace

__all__ = ["build_analytics"]

FUNNELS = {
    "扫码 → 加好友 → 3 天内首单 → 30 天内复购": {
        "steps": [
            {"kind": "scan"},
            {"kind": "added", "within": {"days": 1}},
            {"kind": "order", "nth": 1, "within": {"days": 3}},
            {"kind": "order", "nth": 2, "within": {"days": 30}},
        ],
        "order": "ordered",
        "breakdown": {"by": "channel"},
    },
    "加好友 → 30 天内首单（按导购）": {
        "steps": [{"kind": "added"}, {"kind": "order", "nth": 1, "within": {"days": 30}}],
        "order": "ordered",
        "breakdown": {"by": "staff"},
    },
}
COHORT_REPORTS = {
    "按月加粉 · 下单留存": {
        "cohort": "added",
        "grain": "month",
        "measure": "return",
        "return_event": "order",
        "criterion": "on",
        "offsets": 12,
    },
    "按周加粉 · 好友留存": {"cohort": "added", "grain": "week", "measure": "friend", "offsets": 8},
}
SETTINGS = {
    "gross_margin_bp": 5_500,  # clothing at 55 % gross margin
    "operating_cost_fen_per_member_month": 300,  # staff time, tools and content: ¥3 per member a month
    "super_user_top_pct": 20,
}


def build_analytics(database: Database, *, clock: Clock) -> bool:
    """Settings, saved reports, a KPI plan to year end and a CLV fit for the demo brand."""
    with database.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == "default"))
        if workspace is None:
            return False
        if session.scalar(select(AnalyticsSettings.id).where(AnalyticsSettings.workspace_id == workspace.id)):
            return False
        bind_workspace(session, workspace.id)
        actor = Actor.system(workspace.id, label="siyu demo")
        update_settings(session, actor=actor, changes=dict(SETTINGS), clock=clock)
        for name, definition in FUNNELS.items():
            save_funnel(session, actor=actor, name=name, definition=definition, clock=clock)
        for name, config in COHORT_REPORTS.items():
            saved.save_report(session, actor=actor, kind=ReportKind.RETENTION, name=name, config=config, clock=clock)
        workspace_id = workspace.id
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        actor = Actor.system(workspace_id, label="siyu demo")
        run_fit(session, actor=actor, clock=clock)
        ensure_super_user_segment(session, actor=actor, clock=clock)
        _plan(session, actor, clock)
    return True


def _plan(session: Session, actor: Actor, clock: Clock) -> None:
    """A plan from this month to the end of next June: the pool 30 % larger, and GMV at 1.2× the
    measured monthly pace; the assumptions are left blank so they come from the measured history."""
    history = measure_history(session, actor=actor, clock=clock)
    months = [m for m in history.months if m.gmv_fen]
    monthly_gmv = sum(m.gmv_fen for m in months) // len(months) if months else 1_000_000
    first = brand_today(session, actor.workspace_id, clock).replace(day=1)
    last = date(first.year + 1, 6, 1)
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    plan = plan_input(
        session,
        actor=actor,
        clock=clock,
        values={
            "name": f"{last.year} 年 6 月目标",
            "first_month": first.strftime("%Y-%m"),
            "last_month": last.strftime("%Y-%m"),
            "target_pool": str(max(round(history.pool_now * 1.3), history.pool_now + 100)),
            "target_gmv_fen": str(round(monthly_gmv * count * 1.2)),
            # a brand without pool orders yet (no loyalty history) plans with a typical basket
            "aov_fen": "" if history.aov.value else "29900",
        },
    )
    create_plan(session, actor=actor, plan=plan, clock=clock)
