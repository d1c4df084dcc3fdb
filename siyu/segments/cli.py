"""`siyu segment …`: count a definition or a saved segment, print its SQL, refresh segments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

segment_app = typer.Typer(help="Segments: count, SQL, refresh.", no_args_is_help=True)

DefinitionOpt = Annotated[
    str | None,
    typer.Option("--definition", "-d", help="A definition as JSON, or @file.json."),
]
IdOpt = Annotated[int | None, typer.Option("--id", help="A saved segment's id.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", help="Workspace slug.")]


def _definition(raw: str | None) -> Any:
    if raw is None:
        return None
    text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint="--definition") from exc


def _resolve(session: Any, actor: Any, segment_id: int | None, raw: str | None) -> Any:
    from siyu.segments.service.crud import get_segment
    from siyu.segments.validation import stored_tree

    if (segment_id is None) == (raw is None):
        raise typer.BadParameter("give --id or --definition")
    if segment_id is not None:
        segment = get_segment(session, actor, segment_id)
        if segment.definition is None:
            raise typer.BadParameter("a static segment from an upload has no definition", param_hint="--id")
        return stored_tree(session, workspace_id=actor.workspace_id, definition=segment.definition)
    return _definition(raw)


@segment_app.command("count")
def count(workspace: WorkspaceOpt = "default", segment_id: IdOpt = None, definition: DefinitionOpt = None) -> None:
    """Print how many customers a definition (or saved segment) selects now, and how long it took."""
    import time

    from siyu.cli import _domain_errors, _migrated, _workspace_actor
    from siyu.kit.clock import system_clock
    from siyu.segments.query import count_definition
    from siyu.workspaces.scope import bind_workspace

    database = _migrated()
    with _domain_errors(), database.transaction(read_only=True) as session:
        actor = _workspace_actor(session, workspace)
        bind_workspace(session, actor.workspace_id)
        node = _resolve(session, actor, segment_id, definition)
        started = time.perf_counter()
        size = count_definition(session, workspace_id=actor.workspace_id, definition=node, now=system_clock.now())
        typer.echo(json.dumps({"count": size, "ms": round((time.perf_counter() - started) * 1000, 1)}))


@segment_app.command("sql")
def sql(workspace: WorkspaceOpt = "default", segment_id: IdOpt = None, definition: DefinitionOpt = None) -> None:
    """Print the SQL a definition (or saved segment) compiles to on this database."""
    from siyu.cli import _domain_errors, _migrated, _workspace_actor
    from siyu.kit.clock import system_clock
    from siyu.segments.query import explain_sql
    from siyu.workspaces.scope import bind_workspace

    database = _migrated()
    with _domain_errors(), database.transaction(read_only=True) as session:
        actor = _workspace_actor(session, workspace)
        bind_workspace(session, actor.workspace_id)
        node = _resolve(session, actor, segment_id, definition)
        typer.echo(explain_sql(session, workspace_id=actor.workspace_id, definition=node, now=system_clock.now()))


@segment_app.command("refresh")
def refresh(workspace: WorkspaceOpt = "default", segment_id: IdOpt = None) -> None:
    """Recompute one segment, or every live segment of the workspace, now (tracked: entries and exits)."""
    from siyu.cli import _domain_errors, _migrated, _workspace_actor
    from siyu.kit.clock import system_clock
    from siyu.models import Segment
    from siyu.segments.service.tracking import refresh_segment
    from siyu.workspaces.scope import bind_workspace

    database = _migrated()
    with _domain_errors():
        with database.transaction(read_only=True) as session:
            actor = _workspace_actor(session, workspace)
            statement = select(Segment.id).where(
                Segment.workspace_id == actor.workspace_id, Segment.archived_at.is_(None)
            )
            if segment_id is not None:
                statement = statement.where(Segment.id == segment_id)
            ids = list(session.scalars(statement.order_by(Segment.id)))
        for one in ids:
            with database.transaction() as session:
                bind_workspace(session, actor.workspace_id)
                result = refresh_segment(session, segment_id=one, clock=system_clock)
            if result is not None:
                typer.echo(
                    json.dumps({"segment_id": one, "size": result.size, "entered": result.entered, "left": result.left})
                )
