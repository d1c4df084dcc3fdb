"""Orders of demo customers, drawn from their lifecycle stage, after their first add.

Pure Python on the customer generator's calendar. 首单客 (active) paid once, 复购客 (loyal) two to
five times, 沉睡客 (dormant) once or twice but not in the last 90 days, some who deleted their
staff (churned) once before leaving; leads and new customers have not bought. The first order
comes within days of the add for many (the channel's first orders), weeks or months later for
the rest. Every order gets an `order.paid` event, refunds an `order.refunded` event, with the
same amounts and times as the row.

Each garment's price is drawn first, then which product at that price it is (`siyu.demo.products`)
from a generator of its own: the lines add up to the order's total exactly, and picking products
shifts no other draw (a seed gives the same customers and orders with or without lines).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count

from siyu.demo.history import Calendar, EventPlan, RelationshipPlan
from siyu.demo.products import BY_PRICE
from siyu.models import LifecycleStage, OrderStatus

# One garment, in fen: tees and knits to coats (cheaper pieces sell more).
PRICES = (12_900, 15_900, 19_900, 19_900, 25_900, 29_900, 29_900, 35_900, 39_900, 49_900, 59_900, 89_900)
_ITEMS, _ITEMS_CUM = (1, 2, 3), (75, 95, 100)
FULL_REFUND_RATE, PARTIAL_REFUND_RATE = 0.04, 0.07
CHURNED_BUYERS = 0.3
DORMANT_AFTER = timedelta(days=90)
REPEAT_ON_MINIPROGRAM = 0.65
"""Repurchases mostly go through the brand's mini-program shop (the private domain at work)."""


@dataclass(frozen=True)
class ItemPlan:
    """One line of an order: a product, how many, and what they cost together."""

    sku: str
    product_name: str
    category: str
    quantity: int
    amount_fen: int


@dataclass(frozen=True)
class OrderPlan:
    platform: str
    external_id: str
    status: OrderStatus
    total_fen: int
    refunded_fen: int
    paid_at: datetime
    refunded_at: datetime | None = None
    items: tuple[ItemPlan, ...] = ()
    """The lines; their amounts add up to `total_fen`."""

    def events(self) -> list[EventPlan]:
        """The timeline events of the order: paid, and refunded when it was."""
        props = {"platform": self.platform, "external_id": self.external_id, "total_fen": self.total_fen}
        events = [EventPlan("order.paid", self.paid_at, self.platform, props)]
        if self.refunded_at is not None:
            refunded = props | {"refunded_fen": self.refunded_fen, "status": str(self.status)}
            events.append(EventPlan("order.refunded", self.refunded_at, self.platform, refunded))
        return events


class OrderBook:
    """Draws orders; external ids never repeat (a running serial inside each).

    `items_rng` picks the product behind each drawn price; the builder seeds it from the demo's seed.
    """

    def __init__(self, calendar: Calendar, *, items_rng: random.Random | None = None) -> None:
        self.calendar = calendar
        self.rng = calendar.rng
        self.now = calendar.now
        self.items_rng = items_rng or random.Random("siyu-demo:order-items")
        self._serial = count(1)

    def plan(
        self,
        stage: LifecycleStage,
        relationships: list[RelationshipPlan],
        *,
        platform: str,
        store_code: str | None,
    ) -> list[OrderPlan]:
        """The orders of a customer in `stage` whose adds are `relationships` (first add first)."""
        rng, cal = self.rng, self.calendar
        if not relationships or stage in (LifecycleStage.LEAD, LifecycleStage.NEW):
            return []
        added = relationships[0].added_at
        if stage is LifecycleStage.CHURNED:
            gone = max(r.removed_at or self.now for r in relationships)
            if rng.random() >= CHURNED_BUYERS or gone <= added:
                return []
            return [self._order(cal.between(added, gone), platform, store_code)]
        end = self.now - DORMANT_AFTER if stage is LifecycleStage.DORMANT else self.now
        if end <= added:
            return []
        moments = [self._first_moment(added, end)]
        wanted = {LifecycleStage.LOYAL: rng.randint(2, 5), LifecycleStage.DORMANT: 1 + (rng.random() < 0.35)}
        for _ in range(wanted.get(stage, 1) - 1):
            after = moments[-1] + timedelta(days=rng.uniform(15, 75))
            if after >= end:
                after = cal.between(moments[-1], end)
            moments.append(after)
        repeat = "miniprogram"
        return [
            self._order(at, platform if n == 0 or rng.random() >= REPEAT_ON_MINIPROGRAM else repeat, store_code)
            for n, at in enumerate(moments)
        ]

    def _first_moment(self, added: datetime, end: datetime) -> datetime:
        """Within three days for a fifth, within a month for another fifth, later for the rest."""
        rng = self.rng
        draw = rng.random()
        if draw < 0.2:
            delay = timedelta(seconds=rng.randint(1800, 3 * 86400))
        elif draw < 0.4:
            delay = timedelta(days=rng.uniform(3, 30))
        else:
            delay = timedelta(days=rng.uniform(30, 150))
        at = added + delay
        return at.replace(microsecond=0) if at < end else self.calendar.between(added, end)

    def _order(self, paid_at: datetime, platform: str, store_code: str | None) -> OrderPlan:
        rng = self.rng
        paid_at = paid_at.replace(microsecond=0)
        prices = [rng.choice(PRICES) for _ in range(rng.choices(_ITEMS, cum_weights=_ITEMS_CUM)[0])]
        total = sum(prices)
        status, refunded, refunded_at = OrderStatus.PAID, 0, None
        draw = rng.random()
        if draw < FULL_REFUND_RATE + PARTIAL_REFUND_RATE and self.now - paid_at > timedelta(days=1):
            refunded_at = self.calendar.between(paid_at + timedelta(hours=12), paid_at + timedelta(days=10))
            refunded_at = min(refunded_at, self.now)
            if draw < FULL_REFUND_RATE:
                status, refunded = OrderStatus.REFUNDED, total
            else:  # one piece sent back, or a price difference refunded on a single piece
                status, refunded = OrderStatus.PARTIALLY_REFUNDED, prices[-1] if len(prices) > 1 else 5_000
        external_id = self._external_id(platform, paid_at, store_code)
        return OrderPlan(
            platform, external_id, status, total, refunded, paid_at, refunded_at, items=self._items(prices)
        )

    def _items(self, prices: list[int]) -> tuple[ItemPlan, ...]:
        """A product for each garment's price; the same product twice is one line of quantity 2."""
        lines: dict[str, ItemPlan] = {}
        for price in prices:
            product = self.items_rng.choice(BY_PRICE[price])
            line = lines.get(product.sku)
            quantity, amount = (line.quantity, line.amount_fen) if line is not None else (0, 0)
            lines[product.sku] = ItemPlan(product.sku, product.name, product.category, quantity + 1, amount + price)
        return tuple(lines.values())

    def _external_id(self, platform: str, paid_at: datetime, store_code: str | None) -> str:
        serial = next(self._serial)
        day = paid_at.astimezone(self.calendar.zone).strftime("%Y%m%d")
        if platform == "taobao":  # Tmall order numbers: 19 digits
            return f"38{serial:09d}{self.rng.randrange(10**8):08d}"
        if platform == "pos":
            return f"{store_code or 'POS'}-{day}-{serial:06d}"
        return f"WX{day}{serial:08d}"
