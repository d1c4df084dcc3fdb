"""`siyu analytics …`: analyst commands that run without a server."""

from __future__ import annotations

import typer

from siyu.analytics.clv.cli import clv

analytics_app = typer.Typer(help="Analytics: CLV fits on an orders file.", no_args_is_help=True)
analytics_app.command("clv")(clv)
