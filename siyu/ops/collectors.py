"""What siyu measures, without any web code: the process-wide counters domain code bumps (WeCom
calls, import rows, scheduler leadership) and the gauges read from the database and the broker
when Prometheus scrapes.

The counters live in `PROCESS_REGISTRY`, siyu's own registry rather than prometheus_client's
global default: each app (and each test app in one process) builds a registry of its own for its
HTTP metrics and database gauges and includes this one, so two apps never collide on a metric
name and nothing another library registers globally leaks into siyu's output. Worker and
scheduler processes expose `PROCESS_REGISTRY` alone (see `siyu.ops.metrics.serve_worker_metrics`).

Labels never carry personal data or workspace names or ids: an API path, an error code, a job
kind, a channel kind and a status are all small fixed sets, so the series count stays bounded
however many brands an installation serves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.models import Delivery, Job, ScheduledRun

logger = logging.getLogger(__name__)

# No `_created` series: they double the series count and siyu's dashboards and alerts use rate().
disable_created_metrics()
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=PROCESS_REGISTRY)
PlatformCollector(registry=PROCESS_REGISTRY)
GCCollector(registry=PROCESS_REGISTRY)

WECOM_API_CALLS = Counter(
    "siyu_wecom_api_calls",
    "HTTP requests to the WeCom API (token fetches included), by API path and outcome (ok or error).",
    ["api", "outcome"],
    registry=PROCESS_REGISTRY,
)
WECOM_API_ERRORS = Counter(
    "siyu_wecom_api_errors",
    "Failed WeCom API requests by API path and errcode (WeCom's number, or timeout, connection_error, http_<status>).",
    ["api", "errcode"],
    registry=PROCESS_REGISTRY,
)
IMPORT_ROWS = Counter(
    "siyu_import_rows",
    "Customer import rows committed, by outcome (created, merged, updated, rejected).",
    ["outcome"],
    registry=PROCESS_REGISTRY,
)
SCHEDULER_LEADER = Gauge(
    "siyu_scheduler_leader",
    "1 while this `siyu scheduler` process holds the leader lock and ticks, 0 while it stands by.",
    registry=PROCESS_REGISTRY,
)

IMPORT_OUTCOMES = ("created", "merged", "updated", "rejected")
# Pre-declared so a fresh process already shows zeros (rate() needs a first sample).
for _outcome in IMPORT_OUTCOMES:
    IMPORT_ROWS.labels(_outcome)

DB_STATEMENT_TIMEOUT_MS = 2000
"""PostgreSQL statement timeout for the scrape queries: a slow count must never pile up scrapes."""


def count_import_rows(before: tuple[int, int, int, int], after: tuple[int, int, int, int]) -> None:
    """Count rows an import batch committed: `before`/`after` are (created, merged, updated,
    rejected) around the batch's transaction."""
    for outcome, old, new in zip(IMPORT_OUTCOMES, before, after, strict=True):
        if new > old:
            IMPORT_ROWS.labels(outcome).inc(new - old)


def wecom_api_name(url: str, base_url: str) -> str:
    """The API path of a WeCom URL ("externalcontact/get"): the label, never the query string."""
    path = url[len(base_url) :] if url.startswith(base_url) else url.split("://", 1)[-1].partition("/")[2]
    path = path.split("?", 1)[0].strip("/")
    return path.removeprefix("cgi-bin/")[:80] or "<root>"


def wecom_errcode(response: requests.Response) -> str | None:
    """WeCom's errcode in a response as a label (None when it succeeded)."""
    if response.status_code >= 400:
        return f"http_{response.status_code}"
    if not response.content.lstrip().startswith(b"{"):
        return None  # a media download or another non-JSON body
    try:
        body = response.json()
    except ValueError:
        return "bad_response"
    code = body.get("errcode") if isinstance(body, dict) else None
    try:
        return None if code in (None, 0, "0") else str(int(code))
    except (TypeError, ValueError):
        return "bad_response"


def count_wecom_call(api: str, errcode: str | None) -> None:
    """Count one HTTP request to WeCom and, when it failed, its error code."""
    WECOM_API_CALLS.labels(api, "ok" if errcode is None else "error").inc()
    if errcode is not None:
        WECOM_API_ERRORS.labels(api, errcode).inc()


class MeteredSession(requests.Session):
    """The requests session of a WeCom client: every HTTP request the client makes (API calls,
    token fetches, wechatpy's helpers and its token-refresh retries) passes `request`, so each is
    counted exactly once here."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        method = method.decode() if isinstance(method, bytes) else method
        url = url.decode() if isinstance(url, bytes) else url
        api = wecom_api_name(url, self.base_url)
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.Timeout:
            count_wecom_call(api, "timeout")
            raise
        except requests.RequestException:
            count_wecom_call(api, "connection_error")
            raise
        count_wecom_call(api, wecom_errcode(response))
        return response


class DatabaseCollector(Collector):
    """Gauges computed from the database when scraped: jobs by kind and status, the age of the
    oldest queued and running job, deliveries by channel and status, the last scheduler run.

    The result is cached for `cache_s` seconds, so any number of scrapers (several Prometheus
    servers, a dashboard refreshing) cost the database one set of queries per period; the queries
    run under a short statement timeout on PostgreSQL. A failed query does not fail the scrape:
    `siyu_metrics_database_up` drops to 0 and the other metrics are still served.
    """

    def __init__(self, database: Database, clock: Clock, *, cache_s: float = 10.0) -> None:
        self.database = database
        self.clock = clock
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at: float | None = None

    def describe(self) -> Iterable[Metric]:
        # Describing must not query the database (it runs when the collector is registered).
        return []

    def collect(self) -> Iterable[Metric]:
        with self._lock:  # concurrent scrapes wait for one set of queries instead of each running it
            now = time.monotonic()
            if self._cached_at is None or now - self._cached_at >= self.cache_s:
                self._cached = self._query()
                self._cached_at = now
            return list(self._cached)

    def _query(self) -> list[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("siyu_metrics_database_up", "1 when the last scrape's database queries succeeded.")
        try:
            with self.database.session(read_only=True) as session:
                if session.get_bind().dialect.name == "postgresql":
                    session.execute(text(f"SET LOCAL statement_timeout = {DB_STATEMENT_TIMEOUT_MS}"))
                metrics = [*self._jobs(session), *self._deliveries(session), *self._scheduler(session)]
                session.rollback()
        except Exception:
            logger.warning("metrics database queries failed", exc_info=True)
            metrics = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        took = GaugeMetricFamily(
            "siyu_metrics_database_seconds", "Time the last scrape's database queries took, in seconds."
        )
        took.add_metric([], time.perf_counter() - started)
        return [*metrics, up, took]

    def _age(self, then: datetime | None) -> float:
        return 0.0 if then is None else max((self.clock.now() - then).total_seconds(), 0.0)

    def _jobs(self, session: Session) -> Iterator[Metric]:
        rows = session.execute(
            select(Job.kind, Job.status, func.count(), func.min(Job.created_at), func.min(Job.started_at)).group_by(
                Job.kind, Job.status
            )
        ).all()
        jobs = GaugeMetricFamily(
            "siyu_jobs", "Background jobs in the jobs table by kind and status.", labels=["kind", "status"]
        )
        queued_age = GaugeMetricFamily(
            "siyu_jobs_oldest_queued_age_seconds",
            "Seconds since the oldest job still queued was created, by kind.",
            labels=["kind"],
        )
        running_age = GaugeMetricFamily(
            "siyu_jobs_oldest_running_age_seconds",
            "Seconds since the longest-running job started, by kind.",
            labels=["kind"],
        )
        for kind, status, count, oldest_created, oldest_started in rows:
            jobs.add_metric([kind, str(status)], count)
            if status == "queued":
                queued_age.add_metric([kind], self._age(oldest_created))
            elif status == "running":
                running_age.add_metric([kind], self._age(oldest_started))
        yield from (jobs, queued_age, running_age)

    def _deliveries(self, session: Session) -> Iterator[Metric]:
        rows = session.execute(
            select(Delivery.channel, Delivery.status, func.count()).group_by(Delivery.channel, Delivery.status)
        ).all()
        family = GaugeMetricFamily(
            "siyu_deliveries",
            'Deliveries (one message to one customer) by channel and status; channel "none" when '
            "suppressed before a channel was chosen.",
            labels=["channel", "status"],
        )
        for channel, status, count in rows:
            family.add_metric([channel or "none", str(status)], count)
        yield family

    def _scheduler(self, session: Session) -> Iterator[Metric]:
        last = session.scalar(select(func.max(ScheduledRun.last_started_at)))
        family = GaugeMetricFamily(
            "siyu_scheduler_last_run_age_seconds",
            "Seconds since the scheduler last started any periodic task (several run every minute).",
        )
        if last is not None:
            family.add_metric([], self._age(last))
            yield family


class BrokerCollector(Collector):
    """Messages waiting in Dramatiq's Redis queues (`dramatiq:siyu` and its delayed queue
    `dramatiq:siyu.DQ`) and dead letters (`dramatiq:siyu.XQ`), read with LLEN/ZCARD at scrape time."""

    def __init__(self, url: str, *, queue: str, namespace: str = "dramatiq") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.queue = queue
        self.namespace = namespace

    def close(self) -> None:
        """Close the connection pool (a scrape after this opens a new connection)."""
        self.client.close()

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        waiting = GaugeMetricFamily(
            "siyu_broker_queue_messages",
            "Messages waiting in the broker queue (queue.DQ: delayed until their time).",
            labels=["queue"],
        )
        dead = GaugeMetricFamily(
            "siyu_broker_dead_letters", "Messages Dramatiq gave up on (kept for a week).", labels=["queue"]
        )
        up = GaugeMetricFamily("siyu_metrics_broker_up", "1 when the broker answered this scrape.")
        prefix = f"{self.namespace}:{self.queue}"
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.llen(prefix)
                pipe.llen(prefix + ".DQ")
                pipe.zcard(prefix + ".XQ")
                ready, delayed, dead_letters = pipe.execute()
        except Exception:
            logger.warning("metrics broker query failed", exc_info=True)
            up.add_metric([], 0)
            return [up]
        waiting.add_metric([self.queue], ready)
        waiting.add_metric([self.queue + ".DQ"], delayed)
        dead.add_metric([self.queue], dead_letters)
        up.add_metric([], 1)
        return [waiting, dead, up]


class Include(Collector):
    """Serves another registry's metrics from this one (each app includes `PROCESS_REGISTRY`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()
