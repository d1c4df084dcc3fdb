"""`siyu touch …`: run the dispatch sweep by hand, inspect deliveries."""

from __future__ import annotations

import typer

touch_app = typer.Typer(help="Touch: broadcasts, SOPs and deliveries.", no_args_is_help=True)
