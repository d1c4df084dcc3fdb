"""Short link errors with stable codes."""

from __future__ import annotations

from siyu.kit.errors import Conflict, DomainError, NotFound


class ShortLinkNotFound(NotFound):
    code = "short_link_not_found"


class ShortLinkGone(DomainError):
    """The link was deleted or has expired: printed or sent links answer a friendly page."""

    code = "short_link_gone"
    status_code = 410


class SlugTaken(Conflict):
    code = "slug_taken"


class ShortLinkExpired(Conflict):
    """Recipient links cannot be made from an expired campaign link."""

    code = "short_link_expired"
