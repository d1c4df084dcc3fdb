"""Public referral links `/r/{code}`: record the scan, then send the visitor to the program's live code."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
