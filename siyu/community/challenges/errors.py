"""Domain errors of challenges and posts (stable codes; the edge maps them to 4xx)."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class ChallengeNotFound(NotFound):
    code = "challenge_not_found"


class PostNotFound(NotFound):
    code = "post_not_found"


class InvalidChallenge(InvalidInput):
    code = "invalid_challenge"


class InvalidPost(InvalidInput):
    """Bad post text or images; `details.field` is "body", "topic" or "images"."""

    code = "invalid_post"


class ChallengeNotOpen(Conflict):
    """Not published, or today is outside the challenge's dates."""

    code = "challenge_not_open"


class PostAlreadyRewarded(Conflict):
    code = "post_already_rewarded"
