"""Loyalty domain errors, each with a stable code."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class MemberNotFound(NotFound):
    code = "member_not_found"


class InsufficientPoints(Conflict):
    code = "insufficient_points"


class IdempotencyKeyReused(Conflict):
    """The same idempotency key was sent with different content: a client bug, not a retry."""

    code = "idempotency_key_reused"


class InvalidPoints(InvalidInput):
    code = "invalid_points"


class TierNotFound(NotFound):
    code = "tier_not_found"


class TaskNotFound(NotFound):
    code = "task_not_found"


class TaskLimitReached(Conflict):
    code = "task_limit_reached"


class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"


class RewardNotFound(NotFound):
    code = "reward_not_found"


class OutOfStock(Conflict):
    code = "out_of_stock"


class RedemptionLimitReached(Conflict):
    code = "redemption_limit_reached"


class RewardNotVisible(Conflict):
    """The member's tier or segment does not see this reward."""

    code = "reward_not_visible"


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"


class InvalidTransition(Conflict):
    """A redemption or fulfilment step out of order (ship a cancelled gift, cancel a delivered one)."""

    code = "invalid_transition"


class InvalidTier(InvalidInput):
    """A tier that breaks the ladder: rank 0 must be an earned tier at 0, thresholds rise with rank,
    paid tiers need a price and a validity."""

    code = "invalid_tier"


class TierInUse(Conflict):
    """A tier members are in (or that is the base tier) cannot be deleted."""

    code = "tier_in_use"


class InvalidProgram(InvalidInput):
    code = "invalid_program"


class InvalidTask(InvalidInput):
    """A task definition that does not hold together (a bad key, limit, streak bonus or profile field)."""

    code = "invalid_task"


class TaskKeyTaken(Conflict):
    code = "task_key_taken"


class TaskRequirementsNotMet(Conflict):
    """The member has not really done it yet (e.g. the profile still misses required fields)."""

    code = "task_requirements_not_met"


class InvalidReward(InvalidInput):
    code = "invalid_reward"


class InvalidAddress(InvalidInput):
    """A gift's delivery address without a name, a valid phone number or the address itself."""

    code = "invalid_address"
