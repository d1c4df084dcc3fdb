"""Domain errors of referral programs (each maps to a 4xx at the edge)."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound, PermissionDenied


class ProgramNotFound(NotFound):
    code = "referral_program_not_found"


class ProgramNotActive(Conflict):
    """The program is a draft, paused, ended, or outside its dates."""

    code = "referral_program_not_active"


class NotEligible(PermissionDenied):
    """The member is not among the program's inviters (segment or tier)."""

    code = "referral_not_eligible"


class MemberNotFound(NotFound):
    """Unknown, merged or erased customer."""

    code = "referral_member_not_found"


class ReferralNotFound(NotFound):
    code = "referral_not_found"


class InvalidProgram(InvalidInput):
    code = "invalid_referral_program"


class NotReviewable(Conflict):
    """Only flagged referrals can be reviewed."""

    code = "referral_not_reviewable"
