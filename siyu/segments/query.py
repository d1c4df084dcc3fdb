"""Running definitions: members, counts, per-node counts and the SQL for debugging."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, case, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from siyu.kit.errors import DomainError
from siyu.models import Segment, Workspace
from siyu.segments.compiler import CompileScope, SegmentCompiler
from siyu.segments.definition import Node, walk
from siyu.segments.fields import FieldSpec
from siyu.segments.validation import field_catalog, stored_tree, validate_definition

UNSCOPED = {"siyu_unscoped": True}
"""The compiler scopes every table by workspace itself; the session-wide net would add redundant
`workspace_id` tests to subqueries on tables keyed by workspace-unique ids (tags, segments) and
cost them their covering indexes."""


def statement_timeout_s() -> float:
    """`SIYU_SEGMENT_TIMEOUT_S`, read at each use so tests and operators can change it."""
    from siyu.config import get_settings

    return float(get_settings().segment_timeout_s)


class SegmentQueryTimeout(DomainError):
    code = "segment_timeout"
    status_code = 422


def workspace_tz(session: Session, workspace_id: int) -> ZoneInfo:
    workspace = session.get(Workspace, workspace_id)
    return ZoneInfo(workspace.timezone if workspace else "Asia/Shanghai")


def _loader(session: Session, workspace_id: int) -> Any:
    cache: dict[int, tuple[str, Node | None]] = {}

    def load(segment_id: int) -> tuple[str, Node | None]:
        if segment_id not in cache:
            segment = session.scalar(
                select(Segment).where(Segment.id == segment_id, Segment.workspace_id == workspace_id)
            )
            if segment is None:
                from siyu.segments.definition import DefinitionError

                raise DefinitionError("$", f"no segment with id {segment_id}")
            node = (
                stored_tree(session, workspace_id=workspace_id, definition=segment.definition)
                if segment.kind == "dynamic" and segment.definition
                else None
            )
            cache[segment_id] = (str(segment.kind), node)
        return cache[segment_id]

    return load


def compiler_for(
    session: Session,
    *,
    workspace_id: int,
    now: datetime,
    tz: ZoneInfo | None = None,
    only_customer_id: int | None = None,
    fields: dict[str, FieldSpec] | None = None,
) -> SegmentCompiler:
    scope = CompileScope(
        workspace_id=workspace_id,
        now=now,
        tz=tz or workspace_tz(session, workspace_id),
        dialect=session.get_bind().dialect.name,
        fields=fields if fields is not None else field_catalog(session, workspace_id),
        load_segment=_loader(session, workspace_id),
        only_customer_id=only_customer_id,
    )
    return SegmentCompiler(scope)


def guard(session: Session, timeout_s: float | None = None) -> None:
    """Bound the segment queries of this transaction on PostgreSQL: a statement timeout (a runaway
    definition fails instead of holding a connection), and enough work memory that the planner
    hashes IN-subqueries of a million ids instead of rescanning them per row."""
    if session.get_bind().dialect.name != "postgresql":
        return
    seconds = statement_timeout_s() if timeout_s is None else timeout_s
    session.execute(
        text("SELECT set_config('statement_timeout', :t, true), set_config('work_mem', '64MB', true)"),
        {"t": f"{max(1, int(seconds * 1000))}"},
    )


def execute(session: Session, statement: Any) -> Any:
    """Run a compiled statement, turning a PostgreSQL statement timeout into a clear 422."""
    try:
        return session.execute(statement, execution_options=UNSCOPED)
    except OperationalError as exc:
        if "statement timeout" in str(exc.orig) or "canceling statement" in str(exc.orig):
            raise SegmentQueryTimeout(
                "the segment took too long to evaluate; narrow it (fewer nested groups or shorter windows)",
                details={"field": "definition"},
            ) from exc
        raise


def members_select(
    session: Session,
    *,
    workspace_id: int,
    definition: Node | dict[str, Any],
    now: datetime,
    tz: ZoneInfo | None = None,
    extra: ColumnElement[bool] | None = None,
) -> Select[Any]:
    """`SELECT customers.id` of the members; `extra` narrows further (e.g. a role's visibility)."""
    fields = field_catalog(session, workspace_id)
    node = (
        validate_definition(session, workspace_id=workspace_id, raw=definition, catalog=fields)
        if isinstance(definition, dict)
        else definition
    )
    statement = compiler_for(session, workspace_id=workspace_id, now=now, tz=tz, fields=fields).members(node)
    return statement.where(extra) if extra is not None else statement


def count_definition(
    session: Session,
    *,
    workspace_id: int,
    definition: Node | dict[str, Any],
    now: datetime,
    tz: str | ZoneInfo | None = None,
    extra: ColumnElement[bool] | None = None,
) -> int:
    """How many customers the definition selects now."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    statement = members_select(session, workspace_id=workspace_id, definition=definition, now=now, tz=zone, extra=extra)
    counted = select(func.count()).select_from(statement.subquery())
    guard(session)
    return int(execute(session, counted).scalar_one())


def node_counts(
    session: Session,
    *,
    workspace_id: int,
    node: Node,
    now: datetime,
    tz: ZoneInfo | None = None,
    extra: ColumnElement[bool] | None = None,
) -> dict[str, int]:
    """Customers matching each group and condition on its own (by path), in one pass over the pool."""
    compiler = compiler_for(session, workspace_id=workspace_id, now=now, tz=tz)
    nodes = walk(node)
    columns = [func.coalesce(func.sum(case((compiler.predicate(n), 1), else_=0)), 0) for n in nodes]
    statement = select(*columns).where(compiler.pool())
    if extra is not None:
        statement = statement.where(extra)
    guard(session)
    row = execute(session, statement).one()
    return {n.path: int(value) for n, value in zip(nodes, row, strict=True)}


def customer_matches(
    session: Session, *, workspace_id: int, node: Node, customer_id: int, now: datetime, tz: ZoneInfo | None = None
) -> bool:
    """Whether one customer is in the segment now; every subquery is narrowed to them."""
    compiler = compiler_for(session, workspace_id=workspace_id, now=now, tz=tz, only_customer_id=customer_id)
    return execute(session, compiler.members(node)).first() is not None


def explain_sql(
    session: Session,
    *,
    workspace_id: int,
    definition: Node | dict[str, Any],
    now: datetime,
    tz: str | ZoneInfo | None = None,
) -> str:
    """The SQL of the member query with its values written in, for reading (not for running)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    statement = members_select(session, workspace_id=workspace_id, definition=definition, now=now, tz=zone)
    dialect = session.get_bind().dialect
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    # psycopg's paramstyle doubles every % in the text; the reader wants the SQL as PostgreSQL runs it.
    return sql.replace("%%", "%") if dialect.name == "postgresql" else sql


__all__ = [
    "count_definition",
    "customer_matches",
    "explain_sql",
    "members_select",
    "node_counts",
]
