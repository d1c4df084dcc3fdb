"""Console pages of calendars: group SOP calendars, personas and moments, scripts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

__all__ = ["router"]
