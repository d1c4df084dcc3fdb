"""One error body everywhere: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from siyu.kit.errors import DomainError, InvalidInput

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
        details.append({"field": ".".join(loc) or "body", "message": err.get("msg", ""), "type": err.get("type")})
    return details


def is_console(request: Request) -> bool:
    """Console pages answer errors with HTML; the API (and everything under /api) with JSON."""
    path = request.url.path
    return not (path.startswith(("/api/", "/docs", "/hooks/")) or path in ("/api", "/openapi.json", "/healthz"))


def console_error(request: Request, *, status_code: int, code: str, message: str) -> Response:
    from siyu.web.pages import error_page  # the template layer loads lazily, after the app is built

    return error_page(request, status_code=status_code, code=code, message=message)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        if is_console(request):
            return console_error(request, status_code=exc.status_code, code=exc.code, message=exc.message)
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status_code)

    async def _unstorable(request: Request, _exc: Exception) -> Response:
        # The safety net under schema validation: a value the database refuses (an integer out
        # of range, a NUL character) is bad input; the request's transaction was rolled back.
        return await _domain(
            request,
            InvalidInput(
                "a value is out of range or holds a character that cannot be stored", details={"field": "body"}
            ),
        )

    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(OverflowError, _unstorable)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        details = _validation_details(exc)
        fields = ", ".join(d["field"] for d in details)
        if is_console(request):
            return console_error(request, status_code=422, code="invalid_input", message=f"invalid input: {fields}")
        return JSONResponse(error_body("invalid_input", f"invalid input: {fields}", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {
            401: "unauthenticated",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        if is_console(request) and exc.status_code != 405:
            return console_error(request, status_code=exc.status_code, code=code, message=str(exc.detail))
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error")
        if is_console(request):
            try:
                return console_error(request, status_code=500, code="internal_error", message="internal error")
            except Exception:
                logger.exception("error page failed")
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
