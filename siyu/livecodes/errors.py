"""Live code errors with stable codes."""

from __future__ import annotations

from siyu.kit.errors import DomainError, NotFound


class LiveCodeNotFound(NotFound):
    code = "live_code_not_found"


class LiveCodeGone(DomainError):
    """The code was deleted or has expired: printed QR codes answer a friendly page."""

    code = "live_code_gone"
    status_code = 410


class NoRouteAvailable(DomainError):
    """Every route is capped, off shift or inactive, backups included."""

    code = "no_route_available"
    status_code = 503
