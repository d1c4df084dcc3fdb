"""The arms of a campaign and the uplift of the treated arm over the holdout. Pure functions.

Uplift is the difference of two proportions, treated rate p1 minus holdout rate p0:
- its 95 % interval is Newcombe's hybrid score interval (method 10 of Newcombe 1998), built from
  the Wilson score interval (l, u) of each rate:
  low = d − √((p1 − l1)² + (u0 − p0)²), high = d + √((u1 − p1)² + (p0 − l0)²).
  Unlike the Wald interval it behaves at rates of 0 and 1 and with the small holdouts campaigns
  keep, and it always contains d;
- the p-value is the two-sided two-proportion z-test with the pooled rate
  p̄ = (c1 + c0) / (n1 + n0): z = d / √(p̄(1 − p̄)(1/n1 + 1/n0)) (1.0 when every rate is 0 or 1);
- relative uplift is d / p0 (None when the holdout never converted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from siyu.experiments.stats import wilson_interval

ALPHA = 0.05


@dataclass(frozen=True)
class Arm:
    """One side of the comparison: who was in it, who met the goal, what they spent (net of refunds)."""

    customers: int
    conversions: int
    gmv_fen: int

    @property
    def rate(self) -> float:
        return self.conversions / self.customers if self.customers else 0.0


@dataclass(frozen=True)
class Uplift:
    """Treated rate minus holdout rate, with its confidence interval and significance."""

    rate_treated: float
    rate_holdout: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    relative: float | None
    """difference / holdout rate; None when the holdout rate is 0."""


def uplift(treated: Arm, holdout: Arm | None, alpha: float = ALPHA) -> Uplift | None:
    """The uplift of `treated` over `holdout`; None without a holdout (or an empty arm)."""
    if holdout is None or holdout.customers == 0 or treated.customers == 0:
        return None
    n1, c1, n0, c0 = treated.customers, treated.conversions, holdout.customers, holdout.conversions
    p1, p0 = c1 / n1, c0 / n0
    l1, u1 = wilson_interval(n1, c1, alpha)
    l0, u0 = wilson_interval(n0, c0, alpha)
    difference = p1 - p0
    low = difference - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    pooled = (c1 + c0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    p_value = 1.0 if se == 0 else float(min(1.0, 2 * stats.norm.sf(abs(difference) / se)))
    return Uplift(
        rate_treated=p1,
        rate_holdout=p0,
        difference=difference,
        ci_low=max(-1.0, low),
        ci_high=min(1.0, high),
        p_value=p_value,
        relative=difference / p0 if p0 > 0 else None,
    )
