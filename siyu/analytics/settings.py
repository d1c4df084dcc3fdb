"""The workspace's analytics settings (one row, created on first save; defaults until then)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.rfm.naming import parse_rules
from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.sql import insert_or_ignore
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
    locked = select(AnalyticsSettings).where(AnalyticsSettings.workspace_id == workspace_id).with_for_update()
    saved = session.scalar(locked)
    if saved is None:
        # Two first saves at once: the unique index lets one insert win; both then lock that row.
        defaults = current_settings(session, workspace_id, clock)
        values = {c.key: getattr(defaults, c.key) for c in AnalyticsSettings.__table__.columns if c.key != "id"}
        insert_or_ignore(session, AnalyticsSettings, values, ["workspace_id"])
        saved = session.scalars(locked.execution_options(populate_existing=True)).one()
    return saved


SETTING_FIELDS = (
    "rfm_window_days",
    "rfm_segments",
    "gross_margin_bp",
    "operating_cost_fen_per_member_month",
    "super_user_top_pct",
    "clv_horizon_days",
    "clv_time_unit",
)
CLV_TIME_UNITS = ("day", "week")
WHOLE_RANGES = {"rfm_window_days": (1, 1095), "super_user_top_pct": (1, 100), "clv_horizon_days": (1, 1825)}
"""The settings that are whole numbers, with their ranges (the console form parses them with these)."""


def _int_in(value: Any, field: str, lo: int, hi: int, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"{field} must be a whole number from {lo} to {hi}", details={"field": field})
    return value


def validate_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The changes checked and normalised; `InvalidInput` naming the first bad field."""
    unknown = sorted(set(changes) - set(SETTING_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown setting {unknown[0]}", details={"field": unknown[0]})
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name in WHOLE_RANGES:
            clean[name] = _int_in(value, name, *WHOLE_RANGES[name])
        elif name == "rfm_segments":
            clean[name] = [rule.as_dict() for rule in parse_rules(value if value is not None else [], name)]
        elif name == "gross_margin_bp":
            clean[name] = _int_in(value, name, 0, 10_000, optional=True)
        elif name == "operating_cost_fen_per_member_month":
            clean[name] = _int_in(value, name, 0, 100_000_000, optional=True)
        elif name == "clv_time_unit":
            if value not in CLV_TIME_UNITS:
                raise InvalidInput("clv_time_unit must be day or week", details={"field": name})
            clean[name] = value
    return clean


def settings_document(row: AnalyticsSettings) -> dict[str, Any]:
    """The settings as the API shows them (storage units: basis points, fen)."""
    return {name: getattr(row, name) for name in SETTING_FIELDS} | {"updated_at": row.updated_at.isoformat()}


def update_settings(session: Session, *, actor: Actor, changes: dict[str, Any], clock: Clock) -> AnalyticsSettings:
    """Change some settings (validated first: nothing is written on bad input); audited."""
    actor.require(Scope.ANALYTICS_WRITE)
    clean = validate_changes(changes)
    row = settings_for_update(session, actor.workspace_id, clock)
    before = {name: getattr(row, name) for name in clean}
    for name, value in clean.items():
        setattr(row, name, value)
    row.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="analytics_settings",
        entity_id=row.id,
        before=before,
        after=clean,
        clock=clock,
    )
    return row
