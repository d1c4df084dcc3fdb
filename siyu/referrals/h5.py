"""Member H5 pages of referrals: my code, link and poster, progress towards unlocks and fission targets."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.loyalty.h5.views.common import MemberRoute

router = APIRouter(route_class=MemberRoute)
