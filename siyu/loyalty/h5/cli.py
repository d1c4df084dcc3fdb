"""`siyu member …`: signed links to a member's H5 center."""

from __future__ import annotations

from typing import Annotated

import typer

member_app = typer.Typer(help="Member H5 center: signed links.", no_args_is_help=True)

WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", help="Workspace slug.")]
PurposeOpt = Annotated[
    str,
    typer.Option(
        "--purpose", "-p", help="Page the link lands on: home, points, check_in, tasks, rewards, redemptions, coupons."
    ),
]


@member_app.command("link")
def link(customer_id: int, workspace: WorkspaceOpt = "default", purpose: PurposeOpt = "home") -> None:
    """Print a signed link to the customer's member center (valid SIYU_MEMBER_LINK_DAYS, default 30)."""
    from siyu.cli import _domain_errors, _migrated, _workspace_actor
    from siyu.config import get_settings
    from siyu.kit.clock import system_clock
    from siyu.loyalty.h5.service import issue_member_link
    from siyu.workspaces.scope import bind_workspace

    database = _migrated()
    with _domain_errors(), database.transaction() as session:
        actor = _workspace_actor(session, workspace)
        bind_workspace(session, actor.workspace_id)
        issued = issue_member_link(
            session,
            actor=actor,
            customer_id=customer_id,
            purpose=purpose,
            settings=get_settings(),
            clock=system_clock,
        )
    typer.echo(issued.url)
    typer.echo(f"expires {issued.expires_at.isoformat(timespec='seconds')}", err=True)
