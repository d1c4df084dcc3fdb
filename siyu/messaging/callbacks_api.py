"""Provider status callbacks: /integrations/messaging/{account_id}/status (signed)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
