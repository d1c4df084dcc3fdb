"""Static segments: a snapshot of a segment's members now, or an uploaded list of identities."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.identities import InvalidIdentity, normalize_identity
from siyu.customers.importing.reader import iter_rows, open_source
from siyu.customers.repository import customer_ids_for_identities
from siyu.customers.service.definitions import identity_types
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Customer, Segment, SegmentKind
from siyu.segments import query
from siyu.segments.service.crud import clean_description, clean_name, ensure_name_free, get_segment
from siyu.segments.service.members import member_ids
from siyu.segments.service.tracking import insert_members, record_size

MAX_UPLOAD_ROWS = 1_000_000
MAX_REPORTED_PROBLEMS = 100
_BATCH = 1000


@dataclass
class UploadReport:
    """What an upload of identities matched."""

    rows: int = 0
    matched: int = 0
    """Distinct customers that became members."""
    duplicates: int = 0
    """Rows naming a customer already matched by an earlier row."""
    unmatched: int = 0
    invalid: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    """The first rows that matched nobody or could not be read: line number and reason."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "matched": self.matched,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
            "invalid": self.invalid,
            "problems": self.problems,
        }


def _new_static(
    session: Session,
    actor: Actor,
    *,
    name: str,
    description: str | None,
    source: str,
    clock: Clock,
    definition: dict[str, Any] | None = None,
) -> Segment:
    name = clean_name(name)
    ensure_name_free(session, actor.workspace_id, name)
    now = clock.now()
    segment = Segment(
        workspace_id=actor.workspace_id,
        name=name,
        description=clean_description(description),
        kind=SegmentKind.STATIC,
        definition=definition,
        version=1,
        is_tracked=False,
        source=source[:200],
        created_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    session.flush()
    return segment


def snapshot_segment(
    session: Session, *, actor: Actor, segment_id: int, name: str, clock: Clock, description: str | None = None
) -> Segment:
    """A static copy of a segment's members now (the whole segment, whatever the actor's view)."""
    actor.require(Scope.SEGMENTS_WRITE)
    if not actor.sees_whole_pool:
        raise InvalidInput("only roles that see the whole pool can snapshot a segment", details={"field": "segment_id"})
    source = get_segment(session, actor, segment_id)
    statement = member_ids(session, source, now=clock.now())
    query.guard(session)
    ids = sorted(query.execute(session, statement).scalars())
    segment = _new_static(
        session,
        actor,
        name=name,
        description=description,
        source=f"snapshot:{source.id}",
        clock=clock,
        definition=source.definition,
    )
    insert_members(session, segment, ids, clock.now())
    record_size(session, segment, len(ids), clock.now())
    record(
        session,
        actor,
        action="snapshot",
        entity_type="segment",
        entity_id=segment.id,
        after={"from_segment": source.id, "members": len(ids)},
        clock=clock,
    )
    return segment


def _identity_columns(headers: list[str], known: set[str]) -> list[tuple[int, str]] | tuple[int, int]:
    """Which columns hold identities: named by type ("phone", "taobao"…), or a type,value pair."""
    lowered = [h.strip().lower() for h in headers]
    if "type" in lowered and "value" in lowered:
        return lowered.index("type"), lowered.index("value")
    named = [(i, h) for i, h in enumerate(lowered) if h in known]
    if not named:
        raise InvalidInput(
            "name the identity columns in the first row (e.g. phone, taobao, wecom_external_userid) "
            "or give two columns type,value",
            details={"field": "file"},
        )
    return named


def create_static_from_upload(
    session: Session,
    *,
    actor: Actor,
    name: str,
    path: Path,
    filename: str,
    clock: Clock,
    description: str | None = None,
    phone_region: str = "CN",
) -> tuple[Segment, UploadReport]:
    """A static segment of the customers an uploaded CSV/XLSX of identities names.

    Rows that match nobody or hold an invalid value are counted and the first ones reported
    (line and reason); they never stop the upload. Merged-away profiles resolve to their survivor.
    """
    actor.require(Scope.SEGMENTS_WRITE)
    source = open_source(path)
    known = identity_types(session, actor.workspace_id)
    columns = _identity_columns(source.headers, known)
    report = UploadReport()
    keys: list[tuple[int, tuple[str, str]]] = []  # (line, (type, value))
    for line, cells, problem in iter_rows(source):
        report.rows += 1
        if report.rows > MAX_UPLOAD_ROWS:
            raise InvalidInput(f"at most {MAX_UPLOAD_ROWS} rows per upload", details={"field": "file"})
        if cells is None:
            report.invalid += 1
            _problem(report, line, problem or "unreadable row")
            continue
        pairs = (
            [(str(cells[columns[0]] or "").strip().lower(), str(cells[columns[1]] or ""))]
            if isinstance(columns, tuple)
            else [(type_, str(cells[i] or "")) for i, type_ in columns]
        )
        row_keys = []
        problems_before = len(report.problems)
        for type_, raw in pairs:
            if not raw.strip():
                continue
            if type_ not in known:
                _problem(report, line, f"unknown identity type {type_!r}")
                continue
            try:
                row_keys.append((type_, normalize_identity(type_, raw, phone_region=phone_region)))
            except InvalidIdentity as exc:
                _problem(report, line, exc.message)
        if not row_keys:
            report.invalid += 1
            if len(report.problems) == problems_before:
                _problem(report, line, "no identity value in this row")
            continue
        keys.extend((line, key) for key in row_keys)
    found = customer_ids_for_identities(session, actor.workspace_id, [k for _, k in keys])
    survivors = _survivors(session, actor.workspace_id, set(found.values()))
    members: dict[int, int] = {}  # customer → first line
    lines_matched: set[int] = set()
    for line, key in keys:
        customer_id = found.get(key)
        if customer_id is None:
            continue
        customer_id = survivors.get(customer_id, customer_id)
        lines_matched.add(line)
        members.setdefault(customer_id, line)
    key_lines = sorted({line for line, _ in keys})
    for line in key_lines:
        if line not in lines_matched:
            report.unmatched += 1
            _problem(report, line, "no customer with this identity")
    report.problems.sort(key=lambda p: p["line"])
    report.matched = len(members)
    report.duplicates = len(lines_matched) - len(members)
    segment = _new_static(
        session, actor, name=name, description=description, source=f"upload:{Path(filename).name}", clock=clock
    )
    insert_members(session, segment, sorted(members), clock.now())
    record_size(session, segment, len(members), clock.now())
    record(
        session,
        actor,
        action="upload",
        entity_type="segment",
        entity_id=segment.id,
        after={"file": Path(filename).name, **{k: v for k, v in report.as_dict().items() if k != "problems"}},
        clock=clock,
    )
    return segment, report


def _problem(report: UploadReport, line: int, reason: str) -> None:
    if len(report.problems) < MAX_REPORTED_PROBLEMS:
        report.problems.append({"line": line, "reason": reason})


def _survivors(session: Session, workspace_id: int, ids: set[int]) -> dict[int, int]:
    """Map merged-away customers to the profile they live on in now (following chains of merges)."""
    result: dict[int, int] = {}
    pending = set(ids)
    parent: dict[int, int] = {}
    for _ in range(10):
        if not pending:
            break
        wanted = sorted(pending)
        rows: list[Any] = []
        for start in range(0, len(wanted), _BATCH * 10):  # SQLite caps the bound values of a statement
            rows += session.execute(
                select(Customer.id, Customer.merged_into_id).where(
                    Customer.workspace_id == workspace_id,
                    Customer.id.in_(wanted[start : start + _BATCH * 10]),
                    Customer.merged_into_id.is_not(None),
                )
            ).all()
        pending = set()
        for customer_id, merged_into in rows:
            if merged_into is not None:
                parent[customer_id] = merged_into
                pending.add(merged_into)
    for customer_id in ids:
        target = customer_id
        for _ in range(10):
            if target not in parent:
                break
            target = parent[target]
        if target != customer_id:
            result[customer_id] = target
    return result
