"""Domain errors: each has a stable `code` and the HTTP status the edge maps it to."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class. Raised by services; turned into `{error: {code, message, details}}` at the edge."""

    code = "error"
    status_code = 400

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"
    status_code = 404


class Conflict(DomainError):
    code = "conflict"
    status_code = 409


class InvalidInput(DomainError):
    code = "invalid_input"
    status_code = 422


class PermissionDenied(DomainError):
    code = "forbidden"
    status_code = 403


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status_code = 401


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status_code = 413
