"""Console pages of segments: the list, the visual builder with its live preview, the detail page,
exports, static lists (snapshots and uploads)."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.segments.views import builder, pages

router = APIRouter(include_in_schema=False)
# The builder's fixed paths (/segments/new, /segments/catalog.json, /segments/preview.json) come
# before /segments/{segment_id}, which would otherwise claim them.
router.include_router(builder.router)
router.include_router(pages.router)

__all__ = ["router"]
