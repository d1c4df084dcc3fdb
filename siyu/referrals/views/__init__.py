"""Console pages of referrals: programs, the referral tree, fraud review, posters and metrics."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

__all__ = ["router"]
