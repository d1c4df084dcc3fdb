"""JSON API of SOPs and journeys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
