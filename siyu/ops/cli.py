"""`siyu backup`, `siyu restore` and `siyu retention`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

retention_app = typer.Typer(help="Archive old events to Parquet, then remove them.", no_args_is_help=True)

DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="Database URL (default: SIYU_DATABASE_URL).", show_default=False)
]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _url(database: str | None) -> str:
    from siyu.config import get_settings

    return database or get_settings().database_url


def backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write (its manifest goes beside it).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing backup.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Back up the database (SQLite: online backup API; PostgreSQL: pg_dump) with a JSON manifest."""
    from siyu.kit.clock import system_clock
    from siyu.ops.backup import BackupError, describe
    from siyu.ops.backup import backup as make_backup

    try:
        manifest = make_backup(_url(database), path, clock=system_clock, force=force)
    except BackupError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(describe(manifest), ensure_ascii=False))


def restore(
    path: Annotated[Path, typer.Argument(help="A backup file made by `siyu backup`.")],
    database: DatabaseOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before replacing the target's data.")] = False,
) -> None:
    """Replace the database's content with a backup, then check it against the backup's manifest.

    Stop `siyu serve`, workers and the scheduler first."""
    from sqlalchemy import make_url

    from siyu.ops.backup import BackupError, describe
    from siyu.ops.backup import restore as run_restore

    url = _url(database)
    if not yes:
        shown = make_url(url).render_as_string(hide_password=True)
        typer.confirm(f"Replace everything in {shown} with {path}?", abort=True)
    try:
        manifest = run_restore(path, url)
    except BackupError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(describe(manifest), ensure_ascii=False))


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be archived.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per transaction.")] = 5_000,
) -> None:
    """Archive events older than SIYU_RETENTION_MONTHS to Parquet, then delete them."""
    from siyu.db import get_database
    from siyu.kit.clock import system_clock
    from siyu.ops.retention.schemas import RetentionConfigError
    from siyu.ops.retention.service import run_retention

    database = get_database()
    try:
        report = run_retention(database, database.settings, clock=system_clock, dry_run=dry_run, batch_size=batch_size)
    except RetentionConfigError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))


@retention_app.command("list")
def retention_list(
    workspace_id: Annotated[str | None, typer.Option("--workspace-id", help="Only this workspace (id).")] = None,
) -> None:
    """List the archive files written so far (one line of JSON each)."""
    from siyu.db import get_database
    from siyu.kit.ids import parse_id
    from siyu.ops.retention.repository import archives

    ws = None
    if workspace_id is not None and (ws := parse_id(workspace_id)) is None:
        _fail("--workspace-id must be a positive whole number")
    with get_database().transaction(read_only=True) as session:
        for archive in archives(session, workspace_id=ws):
            typer.echo(
                json.dumps(
                    {
                        "workspace_id": archive.workspace_id,
                        "table": archive.table_name,
                        "period": archive.period,
                        "rows": archive.rows,
                        "path": archive.path,
                        "sha256": archive.sha256,
                        "updated_at": archive.updated_at.isoformat(),
                    }
                )
            )
