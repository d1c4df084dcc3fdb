"""The console: one router gathering every area's pages."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.audit.views import router as audit_views
from siyu.auth.views import router as auth_views
from siyu.customers.importing.views import router as import_views
from siyu.customers.views import router as customer_views
from siyu.jobs.views import router as job_views

router = APIRouter(include_in_schema=False)
for area in (auth_views, customer_views, import_views, job_views, audit_views):
    router.include_router(area)
