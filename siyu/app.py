"""The application factory: API, console, static assets, jobs."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response

from siyu import __version__
from siyu.config import Settings, get_settings
from siyu.db import Database, set_database
from siyu.jobs.broker import configure_broker, start_worker
from siyu.kit.clock import Clock, system_clock
from siyu.kit.errors import PayloadTooLarge
from siyu.kit.logging import request_id_var
from siyu.web.deps import LoginRequired
from siyu.web.errors import error_body, install_error_handlers, is_console
from siyu.web.templating import STATIC_DIR

logger = logging.getLogger("siyu.http")


MULTIPART_OVERHEAD = 64 * 1024


def _upload_too_large(request: Request, settings: Settings) -> bool:
    length = request.headers.get("content-length", "")
    # API uploads are refused here; console uploads go back to their form (see importing/views.py).
    if (
        is_console(request)
        or not length.isdigit()
        or not request.headers.get("content-type", "").startswith("multipart/")
    ):
        return False
    return int(length) > (settings.max_upload_mb << 20) + MULTIPART_OVERHEAD


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
    run_worker: bool | None = None,
    run_scheduler: bool | None = None,
) -> FastAPI:
    """Build the app. `run_worker` and `run_scheduler` default to True in embedded mode (no
    `SIYU_BROKER_URL`): one process runs the console, the jobs and the periodic sweeps."""
    settings = settings or get_settings()
    database = database or Database(settings)
    set_database(database)
    embedded = not settings.broker_url
    run_worker = embedded if run_worker is None else run_worker
    run_scheduler = (embedded and run_worker) if run_scheduler is None else run_scheduler

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import siyu.tasks  # noqa: F401 - registers every actor

        broker = configure_broker(settings.broker_url)
        worker = start_worker(broker, threads=settings.worker_threads) if run_worker else None
        if embedded and run_worker:
            from siyu.jobs.service import resume_unfinished

            with database.transaction() as session:
                resumed = resume_unfinished(session)
            if resumed:
                logger.info("resumed unfinished jobs", extra={"count": resumed})
        stop_scheduler = None
        if run_scheduler:
            from siyu.jobs.scheduler import start_scheduler_thread
            from siyu.ops.leader import leader_lock_for

            # Two embedded servers on one machine (or one database) still elect one scheduler.
            stop_scheduler = start_scheduler_thread(
                database,
                clock or system_clock,
                interval_s=settings.scheduler_interval_s,
                leader=leader_lock_for(database.engine, settings.data_dir),
                standby_s=settings.scheduler_standby_s,
            )
        try:
            yield
        finally:
            if stop_scheduler is not None:
                stop_scheduler.set()
            if worker is not None:
                worker.stop()
            app.state.metrics.close()  # the broker gauges' Redis connections

    app = FastAPI(
        title="siyu 私域",
        version=__version__,
        lifespan=lifespan,
        description="Private-domain operations: customer pool (OneID), tags, consent, timeline, "
        "import. Authenticate with `Authorization: Bearer <token>`.",
    )
    app.state.settings = settings
    app.state.database = database
    app.state.clock = clock or system_clock

    install_error_handlers(app)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        target = "/login?next=" + quote(str(request.url.path))
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if _upload_too_large(request, settings):
            # Refuse before the body is read and spooled, not after.
            too_large = PayloadTooLarge(f"file larger than {settings.max_upload_mb} MiB", details={"field": "file"})
            return JSONResponse(error_body(too_large.code, too_large.message, too_large.details), status_code=413)
        request_id = (request.headers.get("x-request-id") or uuid.uuid4().hex)[:64]
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
            response.headers["X-Request-ID"] = request_id
            logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return response
        finally:
            request_id_var.reset(token)

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret(),
        session_cookie="siyu_session",
        same_site="lax",
        https_only=settings.session_cookie_secure,
        max_age=14 * 24 * 3600,
    )

    from siyu.addtasks.api import router as addtasks_api
    from siyu.analytics.clv.api import router as analytics_clv_api
    from siyu.analytics.funnels.api import router as analytics_funnels_api
    from siyu.analytics.overview.api import router as analytics_overview_api
    from siyu.analytics.performance.api import router as analytics_performance_api
    from siyu.analytics.planning.api import router as analytics_planning_api
    from siyu.analytics.retention.api import router as analytics_retention_api
    from siyu.analytics.rfm.api import router as analytics_rfm_api
    from siyu.audit.api import router as audit_api
    from siyu.auth.api import router as auth_api
    from siyu.campaigns.broadcasts.api import router as broadcasts_api
    from siyu.campaigns.calendars.api import router as calendars_api
    from siyu.campaigns.journeys.api import router as journeys_api
    from siyu.channels.api import router as channels_api
    from siyu.commerce.coupons_api import router as coupons_api
    from siyu.commerce.orders_api import router as orders_api
    from siyu.commerce.products_api import router as products_api
    from siyu.commerce.webhook_api import router as orders_webhook
    from siyu.community.challenges.api import router as challenges_api
    from siyu.community.groups.api import router as groups_api
    from siyu.community.koc.api import router as koc_api
    from siyu.community.lottery.api import router as lottery_api
    from siyu.community.resources.api import router as resources_api
    from siyu.customers.api import router as customers_api
    from siyu.customers.api_definitions import router as definitions_api
    from siyu.customers.importing.api import router as import_api
    from siyu.experiments.api import router as experiments_api
    from siyu.integrations.wechat.api import router as wechat_api
    from siyu.integrations.wecom.callbacks.api import router as wecom_callbacks
    from siyu.integrations.wecom.settings.api import router as wecom_settings_api
    from siyu.integrations.wecom.sidebar.public import router as wecom_sidebar
    from siyu.integrations.wecom.sync.api import router as wecom_sync_api
    from siyu.jobs.api import router as jobs_api
    from siyu.livecodes.api import router as livecodes_api
    from siyu.livecodes.public import router as livecodes_public
    from siyu.loyalty.api import router as loyalty_api
    from siyu.loyalty.h5.api import router as member_h5_api
    from siyu.loyalty.h5.public import router as member_h5
    from siyu.loyalty.rewards_api import router as rewards_api
    from siyu.messaging.api import router as messaging_api
    from siyu.messaging.callbacks_api import router as messaging_callbacks
    from siyu.messaging.public import router as messaging_public
    from siyu.messaging.transactional_api import router as transactional_api
    from siyu.ops.health import router as ops_health
    from siyu.ops.metrics import install_metrics
    from siyu.ops.metrics import router as ops_metrics
    from siyu.ops.ratelimit import install_rate_limits
    from siyu.org.api import router as org_api
    from siyu.referrals.api import router as referrals_api
    from siyu.referrals.commission.api import router as commission_api
    from siyu.referrals.public import router as referrals_public
    from siyu.segments.api import router as segments_api
    from siyu.shortlinks.api import router as shortlinks_api
    from siyu.shortlinks.public import router as shortlinks_public
    from siyu.web.console import router as console
    from siyu.workspaces.api import router as workspace_api

    install_metrics(app)
    install_rate_limits(app)
    for router in (
        ops_health,
        ops_metrics,
        auth_api,
        workspace_api,
        customers_api,
        definitions_api,
        import_api,
        org_api,
        audit_api,
        jobs_api,
        channels_api,
        livecodes_api,
        shortlinks_api,
        experiments_api,
        addtasks_api,
        segments_api,
        messaging_api,
        broadcasts_api,
        journeys_api,
        calendars_api,
        messaging_callbacks,
        transactional_api,
        orders_api,
        products_api,
        coupons_api,
        loyalty_api,
        rewards_api,
        member_h5_api,
        referrals_api,
        commission_api,
        groups_api,
        resources_api,
        challenges_api,
        lottery_api,
        koc_api,
        analytics_overview_api,
        analytics_funnels_api,
        analytics_retention_api,
        analytics_rfm_api,
        analytics_clv_api,
        analytics_performance_api,
        analytics_planning_api,
        wecom_settings_api,
        wecom_sync_api,
        wecom_callbacks,
        wechat_api,
        wecom_sidebar,
        orders_webhook,
        member_h5,
        referrals_public,
        livecodes_public,
        shortlinks_public,
        messaging_public,
        console,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR), check_dir=False), name="static")
    from siyu.integrations.wecom.fake.mount import mount_fake

    mount_fake(app, settings)
    return app
