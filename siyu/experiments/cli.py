"""`siyu ab …`: the experiment statistics from the command line."""

from __future__ import annotations

import typer

app = typer.Typer(help="A/B test statistics.", no_args_is_help=True)
