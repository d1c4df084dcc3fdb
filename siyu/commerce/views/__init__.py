"""Console pages of commerce: products, orders, coupons."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.commerce.views import coupons, orders, products, settings

router = APIRouter(include_in_schema=False)
router.include_router(products.router)
router.include_router(coupons.router)
router.include_router(orders.router)
router.include_router(settings.router)

__all__ = ["router"]
