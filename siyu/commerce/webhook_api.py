"""The signed order webhook shops post to (HMAC-SHA256 over timestamp and body)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from siyu.commerce import webhook
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError, PayloadTooLarge
from siyu.web.errors import error_body
from siyu.workspaces.scope import bind_workspace

router = APIRouter(tags=["webhooks"])


@router.post("/hooks/orders/{workspace_slug}")
async def order_webhook(workspace_slug: str, request: Request) -> JSONResponse:
    """Ingest one order, a batch (`{"orders": [...]}`) or a refund (`{"refund": {...}}`), signed with the
    workspace's webhook secret (see docs/order-import.md). 401 when the signature does not check out."""
    # Errors answer in JSON here (outside /api the app's handlers would render an HTML page).
    try:
        body = await request.body()
        if len(body) > webhook.MAX_BODY_BYTES:
            raise PayloadTooLarge("body larger than 8 MiB", details={"field": "body"})
        status, content = await run_in_threadpool(
            _process,
            request.app.state.database,
            request.app.state.clock,
            workspace_slug,
            request.headers.get("x-siyu-timestamp"),
            request.headers.get("x-siyu-signature"),
            body,
        )
    except DomainError as exc:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status_code)
    return JSONResponse(content=jsonable_encoder(content), status_code=status)


def _process(
    database: Any, clock: Clock, slug: str, timestamp: str | None, signature: str | None, body: bytes
) -> tuple[int, dict[str, Any]]:
    with database.transaction(read_only=True) as reader:
        workspace = webhook.authenticate(
            reader, workspace_slug=slug, timestamp=timestamp, signature=signature, body=body, clock=clock
        )
        workspace_id = workspace.id
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        return webhook.handle(session, workspace_id=workspace_id, body=body, clock=clock)
