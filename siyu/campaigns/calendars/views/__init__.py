"""Console pages of calendars: group SOP calendars, personas and moments, scripts.

Every page is a plain form page: a failed save shows the page again with the message beside the
field the service named. Handlers that write are sync (`def`), see `siyu.web.deps.submitted_form`.
"""

from __future__ import annotations

from fastapi import APIRouter

from siyu.campaigns.calendars.views import groups, moments, scripts

router = APIRouter(include_in_schema=False)
router.include_router(groups.router)
router.include_router(moments.router)
router.include_router(scripts.router)

__all__ = ["router"]
