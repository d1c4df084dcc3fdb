"""Console pages of analytics: rfm."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
