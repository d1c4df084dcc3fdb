"""Console pages of the customer pool: overview, list, detail and tags."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.customers.views import detail, listing, tags

router = APIRouter(include_in_schema=False)
# The list's fixed paths (/customers/export.csv…) come before /customers/{customer_id}.
for module in (listing, detail, tags):
    router.include_router(module.router)
