"""Console pages of messaging: channel accounts, content library, delivery policy, outbox."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.messaging.views import accounts, content, outbox, policy

router = APIRouter(include_in_schema=False)
# /channel-accounts/policy comes before /channel-accounts/{account_id}/…, which would not match it
# anyway (ids are integers), but the fixed path reads first.
router.include_router(policy.router)
router.include_router(accounts.router)
router.include_router(content.router)
router.include_router(outbox.router)

__all__ = ["router"]
