"""Console pages of broadcasts: list, wizard, detail and results, approval."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.campaigns.broadcasts.views import pages, wizard

router = APIRouter(include_in_schema=False)
# The wizard's fixed paths (/broadcasts/new, /broadcasts/forecast) come before /broadcasts/{id}.
router.include_router(wizard.router)
router.include_router(pages.router)

__all__ = ["router"]
