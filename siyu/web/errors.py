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


def is_console_path(path: str) -> bool:
    """Whether errors on `path` are HTML pages (console) rather than the JSON error body."""
    return not (
        path.startswith(("/api/", "/docs", "/hooks/"))
        or path in ("/api", "/openapi.json", "/healthz", "/readyz", "/metrics")
    )


def is_console(request: Request) -> bool:
    """Console pages answer errors with HTML; the API (and everything under /api) with JSON."""
    return is_console_path(request.url.path)


def console_error(request: Request, *, status_code: int, code: str, message: str) -> Response:
    from siyu.web.pages import error_page  # the template layer loads lazily, after the app is built

    return error_page(request, status_code=status_code, code=code, message=message)


ERROR_BODY_SCHEMA: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
        }
    },
}
"""The one error body, as published in `/openapi.json`."""

ERROR_STATUSES = {
    "400": "Bad request",
    "401": "Missing, invalid, revoked or expired token",
    "403": "The token lacks the permission",
    "404": "Not found",
    "409": "Conflicts with the current state",
    "413": "Payload too large",
    "422": "Invalid input; `details` names the field",
}
"""Statuses any JSON operation may answer with the error body (the handlers below map every
domain error and validation failure to one of them)."""


def document_error_responses(app: FastAPI) -> None:
    """Publish the error body and its statuses on every JSON operation of the OpenAPI schema.

    FastAPI documents only 200 and its own 422 shape (`{"detail": [...]}`), which is not what
    `install_error_handlers` sends; clients and the schemathesis fuzzer (tests/fuzz) read the
    schema, so it must describe the real responses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = ERROR_BODY_SCHEMA
        for path, operations in schema.get("paths", {}).items():
            if is_console_path(path):
                continue
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in ERROR_STATUSES.items():
                    responses[status] = {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    document_error_responses(app)

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
