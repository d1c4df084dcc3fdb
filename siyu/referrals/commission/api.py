"""JSON API of distribution commission: rules, ledger, statements, settlement export."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["commission"])
