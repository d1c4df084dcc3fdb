"""The workspace's analytics settings (one row, created on first save; defaults until then)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import AnalyticsSettings


def current_settings(session: Session, workspace_id: int, clock: Clock) -> AnalyticsSettings:
    """The saved settings, or an unsaved row of defaults (not added to the session)."""
    saved = session.scalar(select(AnalyticsSettings).where(AnalyticsSettings.workspace_id == workspace_id))
    if saved is not None:
        return saved
    return AnalyticsSettings(
        workspace_id=workspace_id,
        rfm_window_days=365,
        rfm_segments=[],
        gross_margin_bp=None,
        operating_cost_fen_per_member_month=None,
        super_user_top_pct=20,
        clv_horizon_days=365,
        clv_time_unit="week",
        updated_at=clock.now(),
    )


def settings_for_update(session: Session, workspace_id: int, clock: Clock) -> AnalyticsSettings:
    """The settings row, created (and added to the session) if missing, locked for the change."""
    saved = session.scalar(
        select(AnalyticsSettings).where(AnalyticsSettings.workspace_id == workspace_id).with_for_update()
    )
    if saved is None:
        saved = current_settings(session, workspace_id, clock)
        session.add(saved)
        session.flush()
    return saved
