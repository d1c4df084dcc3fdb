"""Draw customers and orders from known BG/NBD and Gamma-Gamma parameters.

Used by the tests (parameter recovery), the bench (a million customers) and the product's tests
(an order history with a known answer). Everything comes from the `rng` passed in, so a seed gives
the same data every time.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

import numpy as np

from siyu.analytics.clv.summary import unit_days

__all__ = ["BgNbdParams", "GammaGammaParams", "simulate_bgnbd", "simulate_transactions"]


class BgNbdParams(Protocol):
    """Anything with r, alpha, a, b (a fitted `BgNbd` or a simple namespace)."""

    @property
    def r(self) -> float: ...
    @property
    def alpha(self) -> float: ...
    @property
    def a(self) -> float: ...
    @property
    def b(self) -> float: ...


class GammaGammaParams(Protocol):
    """Anything with p, q, v (a fitted `GammaGamma` or a simple namespace)."""

    @property
    def p(self) -> float: ...
    @property
    def q(self) -> float: ...
    @property
    def v(self) -> float: ...


def _draw_counts(m: BgNbdParams, T: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer: purchase rate λ, arrivals n in (0, T] while ignoring dropout, and x = repeats made alive."""
    n_cust = T.shape[0]
    lam = rng.gamma(shape=m.r, scale=1.0 / m.alpha, size=n_cust)
    p_drop = rng.beta(m.a, m.b, size=n_cust)
    # Dropout happens after a repeat purchase with probability p: the K-th repeat is the last one.
    last_repeat = rng.geometric(np.clip(p_drop, 1e-12, 1.0))
    arrivals = rng.poisson(lam * T)
    x = np.minimum(arrivals, last_repeat)
    return np.asarray(lam), np.asarray(arrivals), np.asarray(x)


def simulate_bgnbd(
    m: BgNbdParams,
    gg: GammaGammaParams | None,
    customers: int,
    T: float | np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw (frequency, recency, T, monetary) for `customers` customers observed for `T` time units.

    λ ~ Gamma(r, scale 1/α); p ~ Beta(a, b); repeat purchases arrive as a Poisson process of rate λ
    and the customer drops out after each repeat with probability p. Given n arrivals in (0, T] the
    arrival times are uniform order statistics, so t_x = T · Beta(x, n − x + 1). Spend per purchase
    ~ Gamma(p, scale 1/ν) with ν ~ Gamma(q, scale 1/v); monetary is the mean of the x repeat values
    (0 when x = 0, and all 0 when `gg` is None).
    """
    if customers < 0:
        raise ValueError("customers must be ≥ 0")
    big_t = np.broadcast_to(np.asarray(T, dtype=np.float64), (customers,)).copy()
    if (big_t < 0).any():
        raise ValueError("T must be ≥ 0")
    _, arrivals, x = _draw_counts(m, big_t, rng)
    recency = np.zeros(customers)
    has = x > 0
    recency[has] = big_t[has] * rng.beta(x[has], arrivals[has] - x[has] + 1)
    monetary = np.zeros(customers)
    if gg is not None:
        nu = rng.gamma(shape=gg.q, scale=1.0 / gg.v, size=customers)
        monetary[has] = rng.gamma(shape=gg.p * x[has], scale=1.0 / (nu[has] * x[has]))
    return x.astype(np.float64), recency, big_t, monetary


def simulate_transactions(
    m: BgNbdParams,
    gg: GammaGammaParams | None,
    customers: int,
    rng: np.random.Generator,
    *,
    start: date,
    days: int,
    time_unit: str = "week",
    acquisition_days: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw an order list (customer_ids, datetime64[D] days, amounts) over `days` days from `start`.

    Each customer's first purchase falls on a uniform day in the first `acquisition_days` days
    (default: all of them); repeats follow the BG/NBD process (rates per `time_unit`) until the last
    day. Customer ids are 1..customers. Amounts are Gamma-Gamma draws rounded to cents (every
    purchase, the first one included); 1.0 each when `gg` is None. Two purchases that land on one
    day stay two rows (summarize collapses them).
    """
    if days < 1:
        raise ValueError("days must be ≥ 1")
    unit = unit_days(time_unit)
    window = days if acquisition_days is None else max(1, min(acquisition_days, days))
    birth = rng.integers(0, window, size=customers)
    age_days = (days - 1 - birth).astype(np.float64)
    big_t = age_days / unit
    _, arrivals, x = _draw_counts(m, big_t, rng)
    # Arrival times of the first x of n uniform points in (0, T]: sort n uniforms per customer.
    owner = np.repeat(np.arange(customers), arrivals)
    u = rng.random(owner.shape[0])
    order = np.lexsort((u, owner))
    owner, u = owner[order], u[order]
    rank = np.arange(owner.shape[0]) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    keep = rank < x[owner]
    owner, u = owner[keep], u[keep]
    offset = np.minimum(np.floor(u * age_days[owner]), age_days[owner]).astype(np.int64)

    cust = np.concatenate([np.arange(customers), owner])
    day_off = np.concatenate([birth, birth[owner] + offset])
    if gg is None:
        amounts = np.ones(cust.shape[0])
    else:
        nu = rng.gamma(shape=gg.q, scale=1.0 / gg.v, size=customers)
        amounts = np.round(rng.gamma(shape=gg.p, scale=1.0 / nu[cust]), 2)
        amounts = np.maximum(amounts, 0.01)
    sort = np.lexsort((day_off, cust))
    start_day = np.datetime64(start, "D")
    return (
        (cust[sort] + 1).astype(np.int64),
        start_day + day_off[sort].astype("timedelta64[D]"),
        amounts[sort],
    )
