"""The `siyu` command line."""

from __future__ import annotations

import getpass
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from siyu.analytics.cli import analytics_app
from siyu.auth.permissions import Actor
from siyu.campaigns.cli import touch_app
from siyu.config import get_settings
from siyu.db import Database, get_database
from siyu.experiments.cli import app as ab_app
from siyu.kit.clock import system_clock
from siyu.kit.errors import DomainError
from siyu.kit.logging import configure_logging
from siyu.loyalty.cli import loyalty_app
from siyu.loyalty.h5.cli import member_app
from siyu.ops import cli as ops_cli
from siyu.ops.cli import retention_app
from siyu.segments.cli import segment_app
from siyu.workspaces.scope import bind_workspace

app = typer.Typer(help="siyu 私域 — private-domain operations platform.", no_args_is_help=True)
user_app = typer.Typer(help="Console users.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces (brands).", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports.", no_args_is_help=True)
export_app = typer.Typer(help="Exports.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(workspace_app, name="workspace")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(segment_app, name="segment")
app.add_typer(touch_app, name="touch")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(member_app, name="member")
app.add_typer(analytics_app, name="analytics")
app.add_typer(retention_app, name="retention")
app.command("backup")(ops_cli.backup)
app.command("restore")(ops_cli.restore)


app.add_typer(ab_app, name="ab")

console = Console(stderr=True)
WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", help="Workspace slug.")]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


def _migrated() -> Database:
    from siyu.migrate import upgrade

    database = get_database()
    upgrade(database.engine)
    return database


@contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except DomainError as exc:
        details = f" ({json.dumps(exc.details, ensure_ascii=False)})" if exc.details else ""
        _fail(f"{exc.message}{details}")


def _workspace_actor(session: Session, slug: str) -> Actor:
    from siyu.workspaces.service import ensure_default_workspace, get_by_slug

    workspace = (
        ensure_default_workspace(session, clock=system_clock) if slug == "default" else get_by_slug(session, slug)
    )
    return Actor.system(workspace.id, label="cli")


@app.command()
def migrate(revision: str = "head") -> None:
    """Apply database migrations and create the default workspace: the release step of a deploy.

    Run it once per deploy (a Kubernetes Job, a systemd one-shot, a compose service) before the
    new `siyu serve --no-migrate` replicas, workers and schedulers start.
    """
    _release_step(get_database(), revision)
    console.print(f"database at [bold]{revision}[/bold]")


def _release_step(database: Database, revision: str = "head") -> None:
    from siyu.migrate import MigrationsMissing, upgrade
    from siyu.ops.leader import MigrationLockTimeout, migration_lock
    from siyu.workspaces.service import ensure_default_workspace

    try:
        with migration_lock(database.engine, database.settings.data_dir):
            upgrade(database.engine, revision)
            if revision == "head":
                with database.transaction() as session:
                    ensure_default_workspace(session, clock=system_clock)
    except (MigrationLockTimeout, MigrationsMissing) as exc:
        _fail(str(exc))


def _serve(host: str, port: int) -> None:
    import uvicorn

    from siyu.app import create_app

    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    from siyu.ops.ratelimit import DEFAULT_TRUSTED_PROXIES

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        # One trust setting for uvicorn and siyu's own client-address reading (rate limits, /metrics):
        # uvicorn accepts CIDRs and walks X-Forwarded-For right to left, stopping at the first
        # untrusted hop, so a client cannot pass as 10.0.0.1 by sending that header itself.
        forwarded_allow_ips=settings.trusted_proxies or DEFAULT_TRUSTED_PROXIES,
        # On SIGTERM uvicorn stops accepting, then lets in-flight requests finish this long.
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default SIYU_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default SIYU_PORT).")] = None,
    migrate_first: Annotated[
        bool,
        typer.Option(
            "--migrate/--no-migrate",
            help="Migrate before serving (one process). Replicas use --no-migrate after `siyu migrate`.",
        ),
    ] = True,
) -> None:
    """Run the API and console. In embedded mode (no SIYU_BROKER_URL) jobs and the scheduler run inside."""
    settings = get_settings()
    if migrate_first:
        _release_step(get_database())
    _serve(host or settings.host, port or settings.port)


def _install_stop_signals() -> threading.Event:
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


@app.command()
def worker(
    threads: Annotated[int | None, typer.Option(help="Job threads per process (default SIYU_WORKER_THREADS).")] = None,
    processes: Annotated[int | None, typer.Option(help="Worker processes (default SIYU_WORKER_PROCESSES).")] = None,
    health_port: Annotated[
        int | None, typer.Option(help="Serve /healthz and /readyz on this port (default SIYU_HEALTH_PORT; 0: off).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics on this port, the next ones for further processes "
            "(default SIYU_METRICS_PORT; 0: off)."
        ),
    ] = None,
) -> None:
    """Run background jobs from SIYU_BROKER_URL (Redis) until SIGTERM, then stop gracefully.

    On SIGTERM no new job starts; running jobs get SIYU_SHUTDOWN_GRACE_S seconds to finish, and
    those still running are put back on the queue for another worker.
    """
    import logging
    import os

    import siyu.tasks  # noqa: F401
    from siyu.jobs.broker import configure_broker, start_worker
    from siyu.ops.health import HealthServer
    from siyu.ops.shutdown import graceful_stop, supervise

    settings = get_settings()
    if not settings.broker_url:
        _fail("set SIYU_BROKER_URL (e.g. redis://127.0.0.1:6379/0); embedded mode runs jobs inside `siyu serve`")
    configure_logging(settings.log_level, json_lines=settings.log_json)
    threads = threads or settings.worker_threads
    processes = processes or settings.worker_processes
    port = settings.health_port if health_port is None else health_port
    stop = _install_stop_signals()
    database = get_database()
    health = HealthServer(database, settings, host=settings.health_host, port=port).start() if port else None
    metrics = settings.metrics_port if metrics_port is None else metrics_port
    if processes > 1:
        child = [sys.executable, "-m", "siyu", "worker", "--processes", "1", "--threads", str(threads)]
        # One scrape target per process: child i serves its counters on metrics + i.
        children = [
            [*child, "--health-port", "0", "--metrics-port", str(metrics + index if metrics else 0)]
            for index in range(processes)
        ]
        code = supervise(children, grace_s=settings.shutdown_grace_s, stop=stop)
        if health is not None:
            health.stop()
        raise typer.Exit(code=code)
    if metrics:
        from siyu.ops.metrics import serve_worker_metrics

        serve_worker_metrics(metrics)
    running = start_worker(configure_broker(settings.broker_url), threads=threads)
    stop.wait()
    if health is not None:
        health.is_stopping = True
    report = graceful_stop(running, database, grace_s=settings.shutdown_grace_s)
    if health is not None:
        health.stop()
    if not report.finished_in_grace:
        # Released jobs' threads may still be running (and logging): leave without the interpreter
        # tear-down, which daemon threads writing to stdout can crash.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


@app.command()
def scheduler(
    interval: Annotated[
        float | None, typer.Option(help="Seconds between the leader's ticks (default SIYU_SCHEDULER_INTERVAL_S).")
    ] = None,
    health_port: Annotated[
        int | None, typer.Option(help="Serve /healthz and /readyz on this port (default SIYU_HEALTH_PORT; 0: off).")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (default SIYU_METRICS_PORT; 0: off).")
    ] = None,
) -> None:
    """Enqueue periodic sweeps (tracked segments…) as they fall due, until stopped.

    Run two or more for fail-over: one leader (a PostgreSQL advisory lock; a file lock in
    SIYU_DATA_DIR on SQLite) ticks, the others retry every SIYU_SCHEDULER_STANDBY_S and take
    over when it dies. Needs SIYU_BROKER_URL (embedded mode runs the scheduler inside `siyu serve`).
    """
    import siyu.tasks  # noqa: F401
    from siyu.jobs.broker import configure_broker
    from siyu.jobs.scheduler import SchedulerState, run_scheduler
    from siyu.ops.health import HealthServer
    from siyu.ops.leader import leader_lock_for

    settings = get_settings()
    if not settings.broker_url:
        _fail("set SIYU_BROKER_URL; embedded mode runs the scheduler inside `siyu serve`")
    configure_logging(settings.log_level, json_lines=settings.log_json)
    configure_broker(settings.broker_url)
    database = get_database()
    stop = _install_stop_signals()
    state = SchedulerState()
    port = settings.health_port if health_port is None else health_port
    health = (
        HealthServer(
            database, settings, host=settings.health_host, port=port, extra=lambda: {"leader": state.is_leader}
        ).start()
        if port
        else None
    )
    metrics = settings.metrics_port if metrics_port is None else metrics_port
    if metrics:
        from siyu.ops.metrics import serve_worker_metrics

        serve_worker_metrics(metrics)
    run_scheduler(
        database,
        system_clock,
        stop,
        interval_s=interval or settings.scheduler_interval_s,
        leader=leader_lock_for(database.engine, settings.data_dir),
        standby_s=settings.scheduler_standby_s,
        state=state,
    )
    if health is not None:
        health.stop()


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many customers the demo brand gets.")] = 20_000,
    host: str = "127.0.0.1",
    port: int = 8000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the console afterwards.")] = True,
) -> None:
    """Build a realistic demo brand (once) and start the console."""
    import os

    from siyu.demo.analytics import build_analytics
    from siyu.demo.builder import DEMO_EMAIL, DEMO_PASSWORD, build_demo
    from siyu.demo.community import build_community
    from siyu.demo.loyalty import build_loyalty
    from siyu.demo.touch import build_touch
    from siyu.demo.wecom import build_wecom

    database = _migrated()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("demo brand", total=customers)
        built = build_demo(
            database, customers=customers, clock=system_clock, progress=lambda done: bar.update(task, completed=done)
        )
    if built:
        # After the brand's own transaction: broadcasts are planned and sent through the real
        # dispatch, which commits batch by batch.
        with console.status("touch: broadcasts, journeys, calendars"):
            build_touch(database, clock=system_clock)
        with console.status("loyalty: tiers, points, check-ins, coupons, redemptions"):
            build_loyalty(database, clock=system_clock)
        with console.status("community: referrals, groups, challenge, lottery, KOCs, resources"):
            build_community(database, clock=system_clock)
        with console.status("measure: settings, saved funnels and cohorts, CLV fit, KPI plan"):
            build_analytics(database, clock=system_clock)
    else:
        console.print("demo brand already present; keeping it")
    # The fake WeCom pushes to, and siyu calls it at, public_url: follow --host/--port when it is the default.
    served_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    if "SIYU_PUBLIC_URL" not in os.environ and database.settings.public_url.rstrip("/") != served_url:
        os.environ["SIYU_PUBLIC_URL"] = served_url
        get_settings.cache_clear()
        database.settings = database.settings.model_copy(update={"public_url": served_url})
    elif database.settings.public_url.rstrip("/") != served_url:
        console.print(f"[yellow]SIYU_PUBLIC_URL is {database.settings.public_url}, not {served_url}[/yellow]")
    # Also for a demo built before the WeCom integration existed (it keeps an existing configuration).
    if database.settings.fake_wecom:
        with console.status("wecom: fake corp with the demo staff and friends"):
            build_wecom(database, clock=system_clock)
    else:
        console.print("WeCom: set SIYU_FAKE_WECOM=true (make demo does) to try it on the built-in fake corp")
    console.print(
        f"\n  console:  [bold]{served_url}[/bold]\n  login:    [bold]{DEMO_EMAIL}[/bold]"
        f"\n  password: [bold]{DEMO_PASSWORD}[/bold]\n"
    )
    if database.settings.fake_wecom:
        console.print(f"  fake WeCom: [bold]{served_url}/fake-wecom/[/bold]\n")
    if serve_after:
        _serve(host, port)


@workspace_app.command("create")
def workspace_create(slug: str, name: str, timezone: str = "Asia/Shanghai") -> None:
    """Create a workspace for another brand."""
    from siyu.workspaces.service import create_workspace

    database = _migrated()
    with _domain_errors(), database.transaction() as session:
        workspace = create_workspace(session, slug=slug, name=name, timezone=timezone, clock=system_clock)
        console.print(f"workspace {workspace.slug} (id {workspace.id}) created")


@user_app.command("create")
def user_create(
    email: str,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    role: Annotated[str, typer.Option(help="admin, operator, analyst, store_manager or staff.")] = "admin",
    workspace: WorkspaceOpt = "default",
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted.")] = None,
    staff_id: int | None = None,
    store_id: int | None = None,
) -> None:
    """Create a console user with a role in a workspace (or add the role to an existing user)."""
    from sqlalchemy import select

    from siyu.auth.service import add_member
    from siyu.models import Role, User

    database = _migrated()
    try:
        role_ = Role(role)
    except ValueError:
        _fail(f"unknown role {role!r}")
        return
    with _domain_errors(), database.transaction() as session:
        actor = _workspace_actor(session, workspace)
        is_new = session.scalar(select(User.id).where(User.email == email.strip().lower())) is None
        secret = (password or getpass.getpass("password: ")) if is_new else None
        add_member(
            session,
            actor=actor,
            email=email,
            name=name or email,
            password=secret,
            role=role_,
            staff_id=staff_id,
            store_id=store_id,
            clock=system_clock,
        )
        console.print(f"user {email.strip().lower()} is {role_} in workspace {workspace}")


@token_app.command("create")
def token_create(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="Repeat for several; default all.")] = [],  # noqa: B006
    workspace: WorkspaceOpt = "default",
) -> None:
    """Issue an API token; the secret is printed once."""
    from siyu.auth.service import create_token, scope_names

    database = _migrated()
    with _domain_errors(), database.transaction() as session:
        actor = _workspace_actor(session, workspace)
        issued = create_token(
            session,
            workspace_id=actor.workspace_id,
            name=name,
            scopes=scope or scope_names(),
            actor=actor,
            clock=system_clock,
        )
    typer.echo(issued.secret)


@import_app.command("customers")
def import_customers(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    workspace: WorkspaceOpt = "default",
    encoding: Annotated[str | None, typer.Option(help="utf-8 or gbk; detected when omitted.")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="COLUMN=TARGET, e.g. 手机=phone; repeatable.")] = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count, write nothing.")] = False,
    report_file: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
) -> None:
    """Import customers from CSV or XLSX (dedupe and merge by identities)."""
    from siyu.customers.importing.service import ImportOptions, run_import

    mapping = {}
    for item in map_:
        column, sep, target = item.partition("=")
        if not sep:
            _fail(f"--map takes COLUMN=TARGET, got {item!r}")
        mapping[column] = target
    database = _migrated()
    with database.transaction() as session:
        actor = _workspace_actor(session, workspace)

    @contextmanager
    def transaction() -> Iterator[Session]:
        with database.transaction() as session:
            bind_workspace(session, actor.workspace_id)
            yield session

    with (
        _domain_errors(),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar,
    ):
        task = bar.add_task("import", total=None)
        report = run_import(
            transaction,
            actor=actor,
            path=file,
            clock=system_clock,
            options=ImportOptions(encoding=encoding, mapping=mapping or None, dry_run=dry_run),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            phone_region=get_settings().phone_region,
        )
    document = json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str)
    if report_file:
        report_file.write_text(document, encoding="utf-8")
    console.print(
        f"rows {report.rows}: created {report.created}, merged {report.merged}, "
        f"updated {report.updated}, rejected {report.rejected}" + (" (dry run)" if dry_run else "")
    )
    for rejection in report.rejections[:20]:
        console.print(f"  line {rejection['line']}: {rejection['column']} {rejection['reason']}")
    if not report_file:
        typer.echo(document)


@export_app.command("customers")
def export_customers(
    workspace: WorkspaceOpt = "default",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; stdout if omitted.")] = None,
    unmasked: Annotated[bool, typer.Option(help="Write phones and e-mails whole.")] = False,
) -> None:
    """Export customers as CSV (UTF-8 with BOM); phones masked unless --unmasked."""
    from siyu.customers.export import csv_lines, export_rows
    from siyu.customers.repository import CustomerFilter

    database = _migrated()
    with database.session(read_only=True) as session:
        actor = _workspace_actor(session, workspace)
        bind_workspace(session, actor.workspace_id)
        handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            for chunk in csv_lines(export_rows(session, actor, CustomerFilter(), unmasked=unmasked)):
                handle.write(chunk)
        finally:
            if output:
                handle.close()


@app.command()
def bench(
    name: Annotated[
        str,
        typer.Argument(help="import, lookup, scan, segments, dispatch, orders, redeem, analytics, wecom or cluster"),
    ],
    size: Annotated[str, typer.Option(help="tiny, small or full")] = "small",
    database: Annotated[str | None, typer.Option("--database", help="Database URL (default: a temp SQLite)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a benchmark from bench/ and print its figures as ratios against a same-run baseline."""
    from bench import run_bench

    with _domain_errors():
        result = run_bench(name, size=size, database_url=database, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    from bench.report import print_table

    print_table(result, console=Console())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
