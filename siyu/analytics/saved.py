"""Saved funnel and cohort reports: a name and a definition, reopened with fresh figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound
from siyu.models import ReportKind, SavedReport


def list_reports(session: Session, *, actor: Actor, kind: ReportKind) -> Sequence[SavedReport]:
    actor.require(Scope.ANALYTICS_READ)
    return session.scalars(
        select(SavedReport)
        .where(SavedReport.workspace_id == actor.workspace_id, SavedReport.kind == kind)
        .order_by(SavedReport.name)
    ).all()


def get_report(session: Session, *, actor: Actor, kind: ReportKind, report_id: int) -> SavedReport:
    actor.require(Scope.ANALYTICS_READ)
    report = session.scalar(
        select(SavedReport).where(
            SavedReport.workspace_id == actor.workspace_id, SavedReport.kind == kind, SavedReport.id == report_id
        )
    )
    if report is None:
        raise NotFound(f"{kind} report {report_id} not found")
    return report


def save_report(
    session: Session,
    *,
    actor: Actor,
    kind: ReportKind,
    name: str,
    config: dict[str, Any],
    clock: Clock,
    report_id: int | None = None,
) -> SavedReport:
    """Create a saved report, or replace the definition (and name) of `report_id`.

    `config` must already be validated by the area (it is stored as given).
    """
    actor.require(Scope.ANALYTICS_WRITE)
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("name must be 1–100 characters", details={"field": "name"})
    clash = session.scalar(
        select(SavedReport.id).where(
            SavedReport.workspace_id == actor.workspace_id, SavedReport.kind == kind, SavedReport.name == name
        )
    )
    if clash is not None and clash != report_id:
        raise Conflict(f"a {kind} report named {name!r} already exists", details={"field": "name"})
    now = clock.now()
    if report_id is None:
        report = SavedReport(
            workspace_id=actor.workspace_id,
            kind=kind,
            name=name,
            config=config,
            created_by=actor.label,
            created_at=now,
            updated_at=now,
        )
        session.add(report)
    else:
        report = get_report(session, actor=actor, kind=kind, report_id=report_id)
        report.name, report.config, report.updated_at = name, config, now
    try:
        with session.begin_nested():  # a concurrent save of the same name loses here, not with a 500
            session.flush()
    except IntegrityError:
        raise Conflict(f"a {kind} report named {name!r} already exists", details={"field": "name"}) from None
    record(session, actor, action="save", entity_type=f"{kind}_report", entity_id=report.id, after=config, clock=clock)
    return report


def delete_report(session: Session, *, actor: Actor, kind: ReportKind, report_id: int, clock: Clock) -> None:
    actor.require(Scope.ANALYTICS_WRITE)
    report = get_report(session, actor=actor, kind=kind, report_id=report_id)
    record(session, actor, action="delete", entity_type=f"{kind}_report", entity_id=report.id, clock=clock)
    session.delete(report)
    session.flush()
