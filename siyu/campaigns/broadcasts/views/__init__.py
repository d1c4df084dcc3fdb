"""Console pages of broadcasts: list, wizard, detail and results, approval."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

__all__ = ["router"]
