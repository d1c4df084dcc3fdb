"""HTTP API (placeholder router, filled in by the area)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["experiments"])
