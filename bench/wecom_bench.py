"""`siyu bench wecom`: WeCom callbacks under load, against `/healthz` and a raw insert of the same rows.

A real siyu server (uvicorn, one process, embedded worker threads, as `siyu serve` runs it without a
broker) runs over the bench database; the fake WeCom server runs in this process. N customers add a
staff member through a live code: the fake builds each `add_external_contact` push (with a
`WelcomeCode`) exactly as WeCom does, encrypted and signed, and a second process POSTs them to
`/integrations/wecom/callback` from 8 keep-alive connections in waves of 100 adds — then every push
again, as WeCom retries a push it got no timely answer for. Reported:

- the callback answer time (p50/p99) against `/healthz` on the same server: WeCom waits 5 s;
- the retries: stored once each (`duplicates_stored` must be 0, `duplicates_counted` = N);
- processing: from the first push until every event is processed (customer, identity, attributed
  friend edge, welcome), against a raw Core insert of the same customers, identities and edges;
- the welcome fast path: `send_welcome_msg` calls the fake received (the adds are pushed in waves of
  100, each built as it is sent, so every add is fresh when siyu gets it, as with WeCom).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, cast

from cryptography.fernet import Fernet
from sqlalchemy import Engine, Table, func, insert, select
from sqlalchemy.orm import Session

from bench.harness import Reporter, bench_database, new_workspace, result_row, size_rows
from bench.load import LoadResult, hammer_in_subprocess, hammer_posts, load_process, percentile
from bench.scan_bench import ServerMemory, _free_port, _start_server
from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.integrations.wecom.fake.contacts import simulate_add
from siyu.integrations.wecom.fake.push import encrypt_for, event_xml
from siyu.integrations.wecom.fake.server import start_fake_server
from siyu.kit.clock import system_clock
from siyu.livecodes.schemas import LiveCodeIn, RouteIn, WelcomeIn
from siyu.livecodes.service import create_live_code
from siyu.livecodes.state import encode_state
from siyu.messaging.crypto import encrypt_credentials
from siyu.models import (
    Customer,
    EventStatus,
    Identity,
    IdentityType,
    IntegrationEvent,
    LifecycleStage,
    Relationship,
    Staff,
    WecomIntegration,
)
from siyu.workspaces.scope import bind_workspace

EVENTS = {"tiny": 200, "small": 2_000, "full": 20_000}
WAVE = 100
"""Adds pushed per wave; each wave is built right before it is sent."""
CONCURRENCY = 8
STAFF = 10
WARM_UP = 50
CORP_ID = "wwbench000001"
WECOM_DEADLINE_S = 5.0
"""WeCom waits this long for "success" before it retries a push."""
_CUSTOMERS = cast(Table, Customer.__table__)
_IDENTITIES = cast(Table, Identity.__table__)
_RELATIONSHIPS = cast(Table, Relationship.__table__)


def _setup(engine: Engine, api_base_url: str, credentials_key: str) -> tuple[int, str, list[str]]:
    """The brand: staff with WeCom ids, a live code routing to them, the integration. Returns
    (workspace id, the code's state, the staff userids)."""
    workspace_id = new_workspace(engine, "bench-wecom")
    userids = [f"bench{n:02d}" for n in range(STAFF)]
    sealed = encrypt_credentials(
        {
            "contact_secret": "bench-contact-secret",
            "app_secret": "bench-app-secret",
            "callback_token": "benchtoken",
            "callback_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        },
        Settings(credentials_key=credentials_key, secret_key="bench-secret"),
    )
    with Session(engine) as session, session.begin():
        bind_workspace(session, workspace_id)
        staff = [
            Staff(workspace_id=workspace_id, name=f"导购{n}", wecom_user_id=userid, created_at=system_clock.now())
            for n, userid in enumerate(userids)
        ]
        session.add_all(staff)
        session.flush()
        code = create_live_code(
            session,
            actor=Actor.system(workspace_id),
            data=LiveCodeIn(
                name="bench",
                routes=[RouteIn(staff_id=s.id) for s in staff],
                welcome=WelcomeIn(text="{{ name }}您好，欢迎！"),
            ),
            clock=system_clock,
        )
        session.add(
            WecomIntegration(
                workspace_id=workspace_id,
                corp_id=CORP_ID,
                agent_id="1000002",
                secrets_encrypted=sealed,
                api_base_url=api_base_url,
                is_fake=True,
                is_active=True,
                created_at=system_clock.now(),
                updated_at=system_clock.now(),
            )
        )
        return workspace_id, encode_state(code.id), userids


def _raw_baseline(engine: Engine, events: int) -> float:
    """Seconds to insert the same customers, identities and friend edges with plain Core inserts."""
    workspace_id = new_workspace(engine, "bench-wecom-raw")
    now = system_clock.now()
    with Session(engine) as session, session.begin():
        staff = Staff(workspace_id=workspace_id, name="raw", wecom_user_id="raw", created_at=now)
        session.add(staff)
        session.flush()
        staff_id = staff.id
    started = time.perf_counter()
    for start in range(0, events, 1000):
        batch = range(start, min(start + 1000, events))
        with engine.begin() as conn:
            ids = conn.execute(
                insert(_CUSTOMERS).returning(_CUSTOMERS.c.id, sort_by_parameter_order=True),
                [
                    {
                        "workspace_id": workspace_id,
                        "name": f"顾客{i}",
                        "lifecycle_stage": LifecycleStage.NEW,
                        "attributes": {},
                        "field_updated_at": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in batch
                ],
            ).scalars()
            customer_ids = list(ids)
            conn.execute(
                insert(_IDENTITIES),
                [
                    {
                        "workspace_id": workspace_id,
                        "customer_id": cid,
                        "type": IdentityType.WECOM_EXTERNAL_USERID,
                        "value": f"wmraw{i}",
                        "source": "bench",
                        "created_at": now,
                    }
                    for i, cid in zip(batch, customer_ids, strict=True)
                ],
            )
            conn.execute(
                insert(_RELATIONSHIPS),
                [
                    {"workspace_id": workspace_id, "staff_id": staff_id, "customer_id": cid, "added_at": now}
                    for cid in customer_ids
                ],
            )
    return time.perf_counter() - started


def _pushes(
    fake: Any, workspace_id: int, state: str, userids: list[str], events: int, *, offset: int = 0
) -> list[tuple[str, bytes]]:
    """N encrypted `add_external_contact` pushes, built by the fake as WeCom builds them."""
    corp = fake.corps[CORP_ID]
    requests: list[tuple[str, bytes]] = []
    for i in range(offset, offset + events):
        simulate_add(fake, CORP_ID, userid=userids[i % len(userids)], state=state, name=f"顾客{i}")
        params, body = encrypt_for(corp, event_xml(corp.pushed[-1]["fields"]))
        query = "&".join(f"{k}={v}" for k, v in {**params, "ws": str(workspace_id)}.items())
        requests.append((f"/integrations/wecom/callback?{query}", body))
    return requests


def _first_pushes(
    pool: ProcessPoolExecutor, port: int, fake: Any, workspace_id: int, state: str, userids: list[str], events: int
) -> tuple[LoadResult, list[tuple[str, bytes]]]:
    """Push the adds in waves of `WAVE`, each built just before it is sent with the fake's clock at
    that moment: WeCom pushes an add as it happens, so its `CreateTime` is fresh and its 20-second
    welcome code still valid when siyu gets it. Only the waves' HTTP time is counted."""
    corp = fake.corps[CORP_ID]
    latencies: list[int] = []
    errors, seconds = 0, 0.0
    pushes: list[tuple[str, bytes]] = []
    for start in range(0, events, WAVE):
        now = time.time()
        corp.clock = lambda now=now: now
        wave = _pushes(fake, workspace_id, state, userids, min(WAVE, events - start), offset=start)
        result = pool.submit(hammer_posts, "127.0.0.1", port, wave, CONCURRENCY).result()
        latencies += result.latencies_ns
        errors += result.errors
        seconds += result.seconds
        pushes += wave
    latencies.sort()
    return LoadResult(latencies, errors, seconds), pushes


def _processed(engine: Engine, workspace_id: int) -> tuple[int, int]:
    with Session(engine) as session:
        total = session.scalar(
            select(func.count()).select_from(IntegrationEvent).where(IntegrationEvent.workspace_id == workspace_id)
        )
        waiting = session.scalar(
            select(func.count())
            .select_from(IntegrationEvent)
            .where(IntegrationEvent.workspace_id == workspace_id, IntegrationEvent.status == EventStatus.RECEIVED)
        )
    return int(total or 0), int(waiting or 0)


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Set up the brand and the fake, push every add twice, wait for processing, compare."""
    size_rows(size)
    events = EVENTS[size]
    credentials_key = Fernet.generate_key().decode()
    fake_server = start_fake_server()
    try:
        fake = fake_server.fake
        corp = fake.add_corp(
            CORP_ID,
            contact_secret="bench-contact-secret",
            app_secret="bench-app-secret",
            callback_token="benchtoken",
            callback_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        )
        corp.limits.update({"externalcontact/get": 10**9, "externalcontact/send_welcome_msg": 10**9})
        with bench_database(database_url) as database:
            engine = database.engine
            workspace_id, state, userids = _setup(engine, fake_server.api_base_url, credentials_key)
            for userid in userids:
                corp.users[userid] = {"userid": userid, "name": userid, "department": [1], "status": 1}
            url = engine.url.render_as_string(hide_password=False)
            port = _free_port()
            reporter.step(f"server on 127.0.0.1:{port} over {database.label}")
            os.environ["SIYU_CREDENTIALS_KEY"] = credentials_key
            with tempfile.TemporaryDirectory(prefix="siyu-bench-data-") as data_dir:
                server = _start_server(url, port, data_dir)
                try:
                    with load_process() as pool:
                        hammer_in_subprocess(pool, "127.0.0.1", port, "/healthz", WARM_UP, CONCURRENCY)
                        baseline = hammer_in_subprocess(pool, "127.0.0.1", port, "/healthz", events, CONCURRENCY)
                        reporter.step(f"{events:,} pushes in waves of {WAVE}, then all again (WeCom's retries)")
                        started = time.perf_counter()
                        with ServerMemory(server.pid) as memory:
                            first, pushes = _first_pushes(pool, port, fake, workspace_id, state, userids, events)
                            retries = pool.submit(hammer_posts, "127.0.0.1", port, pushes, CONCURRENCY).result()
                            deadline = time.monotonic() + max(120.0, events * 0.2)
                            while time.monotonic() < deadline:
                                stored, waiting = _processed(engine, workspace_id)
                                if stored >= events and waiting == 0:
                                    break
                                time.sleep(0.2)
                        processing_s = time.perf_counter() - started
                finally:
                    server.terminate()
                    server.wait(timeout=30)
                    os.environ.pop("SIYU_CREDENTIALS_KEY", None)
            reporter.step("raw insert baseline")
            raw_s = _raw_baseline(engine, events)
            with Session(engine) as session:
                stored = int(
                    session.scalar(
                        select(func.count())
                        .select_from(IntegrationEvent)
                        .where(IntegrationEvent.workspace_id == workspace_id)
                    )
                    or 0
                )
                duplicates = int(
                    session.scalar(
                        select(func.sum(IntegrationEvent.duplicates)).where(
                            IntegrationEvent.workspace_id == workspace_id
                        )
                    )
                    or 0
                )
                not_processed = int(
                    session.scalar(
                        select(func.count())
                        .select_from(IntegrationEvent)
                        .where(
                            IntegrationEvent.workspace_id == workspace_id,
                            IntegrationEvent.status != EventStatus.PROCESSED,
                        )
                    )
                    or 0
                )
                edges = int(
                    session.scalar(
                        select(func.count())
                        .select_from(Relationship)
                        .where(Relationship.workspace_id == workspace_id, Relationship.live_code_id.is_not(None))
                    )
                    or 0
                )
        welcomes = corp.calls_of("externalcontact/send_welcome_msg")
    finally:
        fake_server.stop()
    reporter.step("done")
    answers = first.latencies_ns + retries.latencies_ns
    answers.sort()
    p50, p99 = percentile(answers, 0.5), percentile(answers, 0.99)
    base_p50, base_p99 = percentile(baseline.latencies_ns, 0.5), percentile(baseline.latencies_ns, 0.99)
    return {
        "bench": "wecom",
        "size": size,
        "database": database.kind,
        "results": [
            result_row(f"{events} first pushes", first.seconds, baseline.seconds, events),
            result_row(f"{events} retried pushes", retries.seconds, baseline.seconds, events),
            result_row("callback answer p50", p50, base_p50, None),
            result_row("callback answer p99", p99, base_p99, None),
            result_row(f"{events} adds processed", processing_s, raw_s, events),
        ],
        "events": events,
        "concurrency": CONCURRENCY,
        "http_errors": first.errors + retries.errors,
        "answered_over_5s": sum(1 for ns in answers if ns > WECOM_DEADLINE_S * 1e9),
        "events_stored": stored,
        "duplicates_stored": stored - events,
        "duplicates_counted": duplicates,
        "not_processed": not_processed,
        "attributed_edges": edges,
        "welcomes_sent": welcomes,
        "server_peak_mb": memory.peak_growth_mb,
    }
