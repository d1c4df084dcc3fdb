"""Console pages of referrals: programs, the referral tree, fraud review, posters and metrics."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.referrals.views import programs, review

router = APIRouter(include_in_schema=False)
# the review queue and the tree first: their paths would otherwise be read as a program id
router.include_router(review.router)
router.include_router(programs.router)

__all__ = ["router"]
