"""Console pages of loyalty: program, tiers, points, tasks, rewards and fulfilment, the member panel."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.loyalty.views import member, points, program, redemptions, rewards, tasks

router = APIRouter(include_in_schema=False)
for pages in (program, points, tasks, rewards, redemptions, member):
    router.include_router(pages.router)

__all__ = ["router"]
