"""Commerce domain errors, each with a stable code."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class ProductNotFound(NotFound):
    code = "product_not_found"


class OrderNotFound(NotFound):
    code = "order_not_found"


class InvalidOrder(InvalidInput):
    """Negative amounts, items that do not add up, an unknown platform… `details.field` names the field."""

    code = "invalid_order"


class OrderConflict(Conflict):
    """The same (platform, external id) was sent again with different amounts or items."""

    code = "order_conflict"


class UnknownCustomer(Conflict):
    """The buyer matches no customer and the policy is to park the order: it was parked, not ingested."""

    code = "unknown_customer"


class InvalidRefund(InvalidInput):
    """A refund larger than what is left of the order, or of a line."""

    code = "invalid_refund"


class RefundConflict(Conflict):
    code = "refund_conflict"


class CouponTemplateNotFound(NotFound):
    code = "coupon_template_not_found"


class CouponNotFound(NotFound):
    code = "coupon_not_found"


class CouponOutOfStock(Conflict):
    code = "coupon_out_of_stock"


class CouponLimitReached(Conflict):
    code = "coupon_limit_reached"


class CouponNotUsable(Conflict):
    """Expired, void, not yet valid, below the threshold or on a platform it does not cover."""

    code = "coupon_not_usable"


class CouponAlreadyUsed(Conflict):
    code = "coupon_already_used"


class InvalidSignature(InvalidInput):
    """The webhook's signature or timestamp did not check out."""

    code = "invalid_signature"
    status_code = 401
