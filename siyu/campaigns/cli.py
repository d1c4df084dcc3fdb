"""`siyu touch …`: run the dispatch sweep by hand, inspect deliveries."""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

import typer

touch_app = typer.Typer(help="Touch: broadcasts, SOPs and deliveries.", no_args_is_help=True)

MAX_SWEEPS = 100_000
"""`--until-idle` stops after this many sweeps even if work keeps arriving (a safety net)."""


def sweep_once(database: Any, clock: Any) -> dict[str, Any]:
    """One round: advance running SOPs (journeys, when that module is installed), then the dispatch
    sweep (plan due broadcasts, send what is due, close drained broadcasts). Journeys go first so
    the deliveries their send steps plan go out in the same round."""
    from siyu.campaigns.broadcasts.tasks import dispatch

    counts: dict[str, Any] = {}
    run_journeys = _journey_runner()
    if run_journeys is not None:
        counts["journeys"] = dict(run_journeys(database, clock))
    counts.update(dispatch(database, clock).as_dict())
    return counts


def _journey_runner() -> Any:
    try:
        from siyu.campaigns.journeys.engine import run_journeys
    except ImportError:  # an installation without the SOP engine only dispatches broadcasts
        return None
    return run_journeys


def is_idle(counts: dict[str, Any]) -> bool:
    """Did a sweep find nothing to do? (Held deliveries whose time has not come are not work.)"""
    journeys = counts.get("journeys", {})
    busy = sum(counts["planned"].values()) + counts["claimed"] + counts["requeued"] + counts["finished"]
    busy += journeys.get("enrolled", 0) + journeys.get("advanced", 0)
    return busy == 0


def merge(total: dict[str, Any], counts: dict[str, Any]) -> None:
    """Add one sweep's counts into `total` (nested dicts of integers add key by key)."""
    for key, value in counts.items():
        if isinstance(value, dict):
            bucket = Counter(total.get(key, {}))
            bucket.update(value)
            total[key] = dict(bucket)
        else:
            total[key] = total.get(key, 0) + value


@touch_app.command("dispatch")
def dispatch_command(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Sweep again until a sweep finds nothing to do.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the dispatch sweep (and SOPs) now, with the system clock, on the configured database
    (SIYU_DATABASE_URL): plan due broadcasts, send what is due, and print the counts."""
    from siyu.cli import _domain_errors, _migrated
    from siyu.kit.clock import system_clock

    database = _migrated()
    total: dict[str, Any] = {}
    sweeps = 0
    with _domain_errors():
        while True:
            counts = sweep_once(database, system_clock)
            merge(total, counts)
            sweeps += 1
            if not until_idle or is_idle(counts) or sweeps >= MAX_SWEEPS:
                break
    total["sweeps"] = sweeps
    if as_json:
        typer.echo(json.dumps(total, ensure_ascii=False, sort_keys=True))
        return
    for key, value in total.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {v:,}" for k, v in sorted(value.items()) if v) or "–"
            typer.echo(f"{key}: {shown}")
        else:
            typer.echo(f"{key}: {value:,}")


@touch_app.command("rekey")
def rekey_command() -> None:
    """Re-encrypt every stored secret (channel accounts, WeCom and official-account settings) under
    the current key, after a rotation: new key in SIYU_CREDENTIALS_KEY, the old one in
    SIYU_CREDENTIALS_OLD_KEYS until this has run."""
    from siyu.cli import _domain_errors, _migrated
    from siyu.messaging.crypto import rekey_all

    database = _migrated()
    with _domain_errors(), database.transaction() as session:
        count = rekey_all(session)
    typer.echo(f"re-encrypted {count} secret set(s)")
