"""JSON API of group calendars, personas and moments, and the script library."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
