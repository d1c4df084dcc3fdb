"""/metrics: request counts by route template, database and broker gauges, WeCom and import
counters, who may scrape, the worker's own endpoint, and the alert rules naming real metrics."""

from __future__ import annotations

import os
import re
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.customers.importing.service import ImportOptions, run_import
from siyu.db import Database
from siyu.integrations.wecom.client import build_client
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.app import api
from siyu.integrations.wecom.fake.server import RunningFake, start_fake_server
from siyu.integrations.wecom.fake.state import FakeCorp
from siyu.integrations.wecom.ratelimit import MemoryCounter, RateLimiter
from siyu.integrations.wecom.tokens import MemoryTokenStore
from siyu.jobs.broker import QUEUE
from siyu.kit.clock import FrozenClock
from siyu.models import DeliveryStatus, Job, JobStatus
from siyu.ops.collectors import PROCESS_REGISTRY, BrokerCollector
from siyu.ops.metrics import serve_worker_metrics
from siyu.workspaces.scope import bind_workspace
from tests.campaigns.results_factories import make_delivery
from tests.factories import actor_for, make_customer, make_workspace

ALERTS = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"
LOCAL = ("127.0.0.1", 50000)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@api("test/metrics")
def _metrics_echo(corp: FakeCorp, call: object) -> dict[str, object]:
    return {"corp": corp.corp_id}


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def process_value(name: str, **labels: str) -> float:
    return PROCESS_REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def scraping(app: FastAPI, client: tuple[str, int] = LOCAL) -> Iterator[TestClient]:
    with TestClient(app, client=client) as http:
        yield http


def scrape(http: TestClient) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def make_app(settings: Settings, database: Database, clock: FrozenClock, **overrides: object) -> FastAPI:
    return create_app(
        settings.model_copy(update={"metrics_cache_s": 0.0, **overrides}),
        database=database,
        clock=clock,
        run_worker=False,
    )


def test_requests_are_counted_by_route_template_not_raw_path(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    with scraping(make_app(settings, database, clock)) as http:
        # when two customers are fetched (unauthenticated), one health check, and an unknown path
        assert http.get("/api/v1/customers/12").status_code == 401
        assert http.get("/api/v1/customers/13").status_code == 401
        assert http.get("/healthz").status_code == 200
        assert http.get("/api/v1/no-such-thing/77").status_code == 404
        samples = scrape(http)
    # then the two customer reads are one series under the template
    customer = {"method": "GET", "route": "/api/v1/customers/{customer_id}"}
    assert value(samples, "siyu_http_requests_total", status="401", **customer) == 2
    assert value(samples, "siyu_http_requests_total", method="GET", route="/healthz", status="200") == 1
    assert value(samples, "siyu_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert value(samples, "siyu_http_request_duration_seconds_count", **customer) == 2
    assert value(samples, "siyu_http_request_duration_seconds_bucket", le="+Inf", **customer) == 2
    # and no raw path ever becomes a label
    assert not [key for key in samples if any("/12" in v or "/77" in v for _, v in key[1])]


def test_methods_outside_the_standard_set_share_one_label_and_429s_are_counted(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    app = make_app(settings, database, clock, public_requests_per_ip=1)
    with scraping(app) as http:
        # any token is a valid HTTP method: each would otherwise be a new series
        assert http.request("PROPFIND", "/healthz").status_code == 405
        assert http.request("X-RANDOM-1", "/healthz").status_code == 405
        assert http.request("OPTIONS", "/healthz").status_code == 405
        # the rate limit answers before any route: its 429 is counted all the same
        assert http.get("/s/nope").status_code == 404
        assert http.get("/s/nope").status_code == 429
        samples = scrape(http)
    assert value(samples, "siyu_http_requests_total", method="OTHER", route="/healthz", status="405") == 2
    assert value(samples, "siyu_http_requests_total", method="OPTIONS", route="/healthz", status="405") == 1
    assert value(samples, "siyu_http_requests_total", method="GET", route="<unmatched>", status="429") == 1
    assert not [key for key in samples if ("method", "PROPFIND") in key[1] or ("method", "X-RANDOM-1") in key[1]]


def test_job_gauges_count_by_kind_and_status_and_age_the_oldest_queued(
    settings: Settings, database: Database, db: Session, clock: FrozenClock
) -> None:
    kind = "metrics_probe"

    def job(status: JobStatus, minutes_ago: int) -> Job:
        created = clock.now() - timedelta(minutes=minutes_ago)
        return Job(
            kind=kind,
            args={},
            status=status,
            created_at=created,
            started_at=None if status == JobStatus.QUEUED else created + timedelta(minutes=1),
        )

    db.add_all([job(JobStatus.QUEUED, 5), job(JobStatus.QUEUED, 2), job(JobStatus.RUNNING, 10)])
    db.add_all([job(JobStatus.FAILED, 30), job(JobStatus.FAILED, 20), job(JobStatus.FAILED, 1)])
    db.flush()
    with scraping(make_app(settings, database, clock)) as http:
        samples = scrape(http)
    assert value(samples, "siyu_jobs", kind=kind, status="queued") == 2
    assert value(samples, "siyu_jobs", kind=kind, status="running") == 1
    assert value(samples, "siyu_jobs", kind=kind, status="failed") == 3
    assert value(samples, "siyu_jobs_oldest_queued_age_seconds", kind=kind) == 300
    assert value(samples, "siyu_jobs_oldest_running_age_seconds", kind=kind) == 540
    assert value(samples, "siyu_metrics_database_up") == 1


def test_delivery_gauges_by_channel_and_status_are_cached_between_scrapes(
    settings: Settings, database: Database, db: Session, clock: FrozenClock
) -> None:
    ws = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=actor_for(ws), clock=clock).customer

    def deliver(source_id: int, status: DeliveryStatus, channel: str | None) -> None:
        make_delivery(
            db,
            workspace_id=ws.id,
            source_id=source_id,
            customer_id=customer.id,
            status=status,
            channel=channel,
            planned_at=clock.now(),
        )

    with scraping(make_app(settings, database, clock, metrics_cache_s=60.0)) as http:
        before = scrape(http)
        deliver(1, DeliveryStatus.SENT, "sms")
        deliver(2, DeliveryStatus.SENT, "sms")
        deliver(3, DeliveryStatus.FAILED, "sms")
        deliver(4, DeliveryStatus.SUPPRESSED, None)
        db.flush()
        cached = scrape(http)
        http.app.state.metrics.database.cache_s = 0.0  # type: ignore[attr-defined]
        after = scrape(http)

    def delta(channel: str, status: str) -> float:
        name = "siyu_deliveries"
        return value(after, name, channel=channel, status=status) - value(before, name, channel=channel, status=status)

    assert (delta("sms", "sent"), delta("sms", "failed"), delta("none", "suppressed")) == (2, 1, 1)
    # the scrape within the cache period did not query again
    assert value(cached, "siyu_deliveries", channel="sms", status="sent") == value(
        before, "siyu_deliveries", channel="sms", status="sent"
    )


def test_metrics_need_the_token_when_one_is_set(settings: Settings, database: Database, clock: FrozenClock) -> None:
    app = make_app(settings, database, clock, metrics_token="scrape-secret")
    with scraping(app, client=("8.8.8.8", 40000)) as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        response = http.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert response.status_code == 200
        assert "siyu_http_requests_total" in response.text


def test_without_a_token_only_private_networks_may_scrape(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    app = make_app(settings, database, clock)
    with scraping(app, client=("8.8.8.8", 40000)) as http:
        response = http.get("/metrics")
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    with scraping(app, client=("10.1.2.3", 40000)) as http:
        assert http.get("/metrics").status_code == 200


@pytest.fixture(scope="module")
def fake_wecom() -> Iterator[RunningFake]:
    running = start_fake_server()
    try:
        yield running
    finally:
        running.stop()


def test_wecom_calls_and_errors_are_counted_by_api_and_errcode(fake_wecom: RunningFake) -> None:
    corp_id = f"wwmetrics{uuid.uuid4().hex[:8]}"
    corp = fake_wecom.fake.add_corp(corp_id, contact_secret="metrics-secret")
    client = build_client(
        corp_id,
        "metrics-secret",
        base_url=fake_wecom.api_base_url,
        tokens=MemoryTokenStore(),
        limiter=RateLimiter(MemoryCounter()),
    )
    calls = {
        (api_, outcome): process_value("siyu_wecom_api_calls_total", api=api_, outcome=outcome)
        for api_ in ("test/metrics", "gettoken")
        for outcome in ("ok", "error")
    }
    errors = {
        code: process_value("siyu_wecom_api_errors_total", api="test/metrics", errcode=code)
        for code in ("42001", "45009")
    }
    # when: a call (token fetched first), a call with an expired token (refreshed and repeated), a rate-limited call
    client.call("GET", "test/metrics")
    corp.expire_tokens()
    client.call("GET", "test/metrics")
    corp.fail_next("test/metrics", 45009)
    with pytest.raises(WecomError):
        client.call("GET", "test/metrics")
    client._http.close()  # no keep-alive connection left for the fake server to wait on at shutdown

    def grown(api_: str, outcome: str) -> float:
        return process_value("siyu_wecom_api_calls_total", api=api_, outcome=outcome) - calls[(api_, outcome)]

    assert (grown("test/metrics", "ok"), grown("test/metrics", "error")) == (2, 2)
    assert (grown("gettoken", "ok"), grown("gettoken", "error")) == (2, 0)
    assert process_value("siyu_wecom_api_errors_total", api="test/metrics", errcode="42001") - errors["42001"] == 1
    assert process_value("siyu_wecom_api_errors_total", api="test/metrics", errcode="45009") - errors["45009"] == 1


def _import(database: Database, actor: Actor, path: Path, clock: FrozenClock, **options: object) -> None:
    @contextmanager
    def transaction() -> Iterator[Session]:
        with database.transaction() as session:
            bind_workspace(session, actor.workspace_id)
            yield session

    run_import(transaction, actor=actor, path=path, options=ImportOptions(**options), clock=clock)  # type: ignore[arg-type]


def test_import_rows_are_counted_by_outcome_once_committed(
    database: Database, db: Session, clock: FrozenClock, tmp_path: Path
) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    path = tmp_path / "customers.csv"
    path.write_text("姓名,手机号\n张三,13800138001\n李四,12345\n王五,13900139002\n张三,13800138001\n")
    outcomes = ("created", "merged", "updated", "rejected")
    before = [process_value("siyu_import_rows_total", outcome=o) for o in outcomes]
    _import(database, actor_for(ws), path, clock, dry_run=True)  # a dry run commits nothing: counts nothing
    _import(database, actor_for(ws), path, clock)
    after = [process_value("siyu_import_rows_total", outcome=o) for o in outcomes]
    assert dict(zip(outcomes, (a - b for a, b in zip(after, before, strict=True)), strict=True)) == {
        "created": 2,
        "merged": 0,
        "updated": 1,
        "rejected": 1,
    }


def test_worker_metrics_server_serves_the_process_counters() -> None:
    server = serve_worker_metrics(0, host="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as response:
            names = {family.name for family in text_string_to_metric_families(response.read().decode())}
    finally:
        server.shutdown()
        server.server_close()
    assert {"siyu_wecom_api_calls", "siyu_import_rows", "siyu_scheduler_leader", "process_cpu_seconds"} <= names
    assert "siyu_http_requests" not in names and "siyu_jobs" not in names


BROKER_URL = os.environ.get("SIYU_TEST_BROKER_URL")


@pytest.mark.broker
@pytest.mark.skipif(not BROKER_URL, reason="SIYU_TEST_BROKER_URL not set")
def test_broker_queue_lengths_come_from_dramatiq_redis_keys() -> None:
    assert BROKER_URL
    # given messages put where Dramatiq itself puts them: three ready, one delayed, one dead letter
    namespace = f"metrics{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(url=BROKER_URL, namespace=namespace)
    broker.declare_queue(QUEUE)
    collector = BrokerCollector(BROKER_URL, queue=QUEUE, namespace=namespace)
    try:
        for n in range(4):
            broker.enqueue(Message(queue_name=QUEUE, actor_name="probe", args=(n,), kwargs={}, options={}))
        broker.enqueue(Message(queue_name=QUEUE, actor_name="probe", args=(9,), kwargs={}, options={}), delay=60_000)
        consumer = broker.consume(QUEUE, prefetch=1, timeout=1000)
        dead = next(message for message in consumer if message is not None)
        consumer.nack(dead)
        consumer.close()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for family in collector.collect() for s in family.samples
        }
    finally:
        for queue in (QUEUE, QUEUE + ".DQ"):
            broker.flush(queue)
        collector.client.delete(*collector.client.keys(f"{namespace}:*") or [f"{namespace}:none"])
        broker.close()
        collector.close()
    assert value(samples, "siyu_broker_queue_messages", queue="siyu") == 3
    assert value(samples, "siyu_broker_queue_messages", queue="siyu.DQ") == 1
    assert value(samples, "siyu_broker_dead_letters", queue="siyu") == 1
    assert value(samples, "siyu_metrics_broker_up") == 1


@pytest.mark.broker
@pytest.mark.skipif(not BROKER_URL, reason="SIYU_TEST_BROKER_URL not set")
def test_the_broker_gauges_connection_is_closed_when_the_app_stops(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    assert BROKER_URL
    app = make_app(settings, database, clock)
    collector = BrokerCollector(BROKER_URL, queue=QUEUE, namespace=f"metrics{uuid.uuid4().hex[:8]}")
    app.state.metrics.broker = collector  # what `build_app_metrics` does with a Redis broker
    app.state.metrics.registry.register(collector)
    pool = collector.client.connection_pool
    with scraping(app) as http:
        assert value(scrape(http), "siyu_metrics_broker_up") == 1
        assert [c for c in pool._available_connections if c._sock is not None]
    assert [c for c in [*pool._available_connections, *pool._in_use_connections] if c._sock is not None] == []


def test_every_alert_names_a_metric_siyu_exports(settings: Settings, database: Database, clock: FrozenClock) -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        assert rule["annotations"]["runbook"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
    with scraping(make_app(settings, database, clock)) as http:
        http.get("/healthz")
        exported = {family.name for family in text_string_to_metric_families(http.get("/metrics").text)}
    # Families present only when there are rows or a Redis broker (described in docs/monitoring.md).
    exported |= {
        "siyu_jobs",
        "siyu_jobs_oldest_queued_age_seconds",
        "siyu_deliveries",
        "siyu_scheduler_last_run_age_seconds",
        "siyu_broker_queue_messages",
        "siyu_wecom_api_errors",
    }
    named = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for rule in rules
        for name in re.findall(r"\bsiyu_[a-z0-9_]+", rule["expr"])
    }
    assert named and named <= exported, named - exported
