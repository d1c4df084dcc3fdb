"""Console pages of SOPs and journeys: list, step editor, enrolments and results."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

__all__ = ["router"]
