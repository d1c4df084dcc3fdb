"""Provider status callbacks: /integrations/messaging/{account_id}/status (signed).

No login: providers authenticate with the account's signature (webhook HMAC) or callback token
(SMS report pushes). 401 for a push that cannot be trusted (nothing is written), 404 for an
unknown account, 200 {"recorded": n, …the provider's expected acknowledgement}.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.kit.errors import NotFound
from siyu.messaging.adapters.base import CallbackError
from siyu.messaging.callbacks import CallbackRequest, handle_callback
from siyu.web.errors import error_body

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
MAX_BODY = 1024 * 1024


async def _raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("/integrations/messaging/{account_id}/status")
def status_callback(account_id: int, request: Request, body: Annotated[bytes, Depends(_raw_body)]) -> JSONResponse:
    """Verify a provider's status push and record its reports (sync: it writes the database)."""
    if len(body) > MAX_BODY:
        return JSONResponse(error_body("payload_too_large", "the callback body is too large"), status_code=413)
    database: Database = request.app.state.database
    clock: Clock = request.app.state.clock
    incoming = CallbackRequest(
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=body,
        now=clock.now(),
    )
    try:
        with database.transaction() as session:
            recorded, ack = handle_callback(session, account_id=account_id, request=incoming, clock=clock)
    except NotFound as exc:
        return JSONResponse(error_body(exc.code, exc.message), status_code=404)
    except CallbackError as exc:
        logger.warning("status callback rejected", extra={"channel_account_id": account_id, "why": str(exc)})
        return JSONResponse(error_body("bad_signature", str(exc)), status_code=401)
    return JSONResponse({"recorded": recorded, **ack})
