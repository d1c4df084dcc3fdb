"""`siyu loyalty …`: run the daily loyalty work by hand (points expiry, tier review)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

loyalty_app = typer.Typer(help="Loyalty: points expiry, tier reviews.", no_args_is_help=True)

WorkspaceOpt = Annotated[str | None, typer.Option("--workspace", "-w", help="Workspace slug (default: all).")]


def _workspace_id(slug: str | None) -> int | None:
    from siyu.cli import _domain_errors, _migrated, _workspace_actor

    if slug is None:
        return None
    with _domain_errors(), _migrated().transaction(read_only=True) as session:
        return _workspace_actor(session, slug).workspace_id


@loyalty_app.command("expire")
def expire(workspace: WorkspaceOpt = None) -> None:
    """Expire every member's due points now (what the hourly job does); prints the counts."""
    from siyu.cli import _migrated
    from siyu.kit.clock import system_clock
    from siyu.loyalty.tasks import expire_paid, expire_points

    workspace_id = _workspace_id(workspace)
    database = _migrated()
    points = expire_points(database, system_clock, workspace_id=workspace_id)
    paid = expire_paid(database, system_clock, workspace_id=workspace_id)
    typer.echo(json.dumps({"points": points, "paid_tiers": paid}))


@loyalty_app.command("review")
def review(workspace: WorkspaceOpt = None) -> None:
    """Run due tier reviews and end grace periods that are over; prints the counts."""
    from siyu.cli import _migrated
    from siyu.kit.clock import system_clock
    from siyu.loyalty.tasks import review_tiers

    workspace_id = _workspace_id(workspace)
    typer.echo(json.dumps(review_tiers(_migrated(), system_clock, workspace_id=workspace_id)))
