"""JSON API of broadcasts: CRUD, submit, approve, cancel, forecast, results."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
