"""The public callback endpoint `/integrations/wecom/callback` (no login: WeCom signs its pushes).

GET verifies the URL (answers the decrypted echostr), POST receives an event (answers "success").
`?ws=<workspace id>` names the workspace; without it, the corp id of the envelope does (GET: the
integration whose token signs the request). The work is in `service`; this module only moves bytes
in and text out, off the event loop. A body over `MAX_BODY_BYTES` is refused (413) unread; the
welcome fast path runs as a background task after "success" is sent.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse

from siyu.integrations.wecom.callbacks.service import MAX_BODY_BYTES, CallbackAnswer, handle_post, handle_verify

router = APIRouter(tags=["integrations"], include_in_schema=False)
PATH = "/integrations/wecom/callback"


def _response(answer: CallbackAnswer) -> PlainTextResponse:
    background = BackgroundTask(answer.after) if answer.after is not None else None
    return PlainTextResponse(answer.text, status_code=answer.status_code, background=background)


async def _read_capped(request: Request) -> bytes | None:
    """The body, or None when it is (or claims to be) larger than `MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.get(PATH)
async def verify(request: Request) -> PlainTextResponse:
    """WeCom's URL verification: msg_signature, timestamp, nonce, echostr → the decrypted echostr."""
    state = request.app.state
    answer = await run_in_threadpool(handle_verify, state.database, state.clock, dict(request.query_params))
    return _response(answer)


@router.post(PATH)
async def receive(request: Request) -> PlainTextResponse:
    """One encrypted event from WeCom."""
    state = request.app.state
    body = await _read_capped(request)
    if body is None:
        return PlainTextResponse("push too large", status_code=413)
    answer = await run_in_threadpool(handle_post, state.database, state.clock, dict(request.query_params), body)
    return _response(answer)
