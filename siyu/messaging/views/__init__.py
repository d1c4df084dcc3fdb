"""Console pages of messaging: channel accounts, content library, delivery policy, outbox."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

__all__ = ["router"]
