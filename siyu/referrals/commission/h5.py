"""Member H5 page of an approved KOC: commission balance, entries and statements."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.loyalty.h5.views.common import MemberRoute

router = APIRouter(route_class=MemberRoute)
