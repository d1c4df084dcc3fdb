"""The rewards mall (积分商城): rewards bought with points, redemptions and their fulfilment.

`catalog` holds the operator's rewards (CRUD), `service` the mall and redemption, `fulfilment`
shipping, delivery and cancellation.
"""
