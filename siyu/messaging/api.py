"""JSON API of messaging: channel accounts, content library, delivery policy, outbox."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
