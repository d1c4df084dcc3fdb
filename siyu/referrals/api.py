"""JSON API of referral programs: programs, codes, the referral tree, fraud review and metrics."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["referrals"])
