"""Statistics of an A/B test on a conversion rate. Pure functions: numbers in, numbers out.

Each arm is (users, conversions); the first arm is the control and every other arm is compared
with it. Formulas (z = the normal quantile for the confidence level, 1.96 at alpha 0.05):

- absolute difference d = p1 − p0, CI d ± z·√(p0(1−p0)/n0 + p1(1−p1)/n1) (unpooled Wald), p-value
  from the two-proportion z-test with the pooled rate p̄ = (c0+c1)/(n0+n1):
  z = d / √(p̄(1−p̄)(1/n0 + 1/n1));
- relative difference (lift) L = p1/p0 − 1, SE by the delta method
  √(Var p1 / p0² + p1²·Var p0 / p0⁴), CI L ± z·SE, p-value from L/SE;
- Bayesian: posteriors Beta(1+c, 1+n−c); the chance to beat control P(p1 > p0) is computed
  exactly (Evan Miller's closed form for integer parameters) and the expected loss
  E[max(p0 − p1, 0)] from the same form on size-biased posteriors;
- sample-ratio mismatch: chi-square goodness of fit of the users against the planned weights,
  flagged below p = 0.001;
- with more than one treatment arm, p-values are also Bonferroni-adjusted (× the number of
  comparisons) and significance is judged on the adjusted value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import betaln, logsumexp

from siyu.kit.errors import InvalidInput

SRM_THRESHOLD = 0.001
MAX_ARMS = 20
_EXACT_LIMIT = 500_000
"""Above this many successes in both arms the exact sum would take millions of terms; the
posteriors are then so close to normal (skewness ≈ 2/√a < 0.003) that a normal approximation is used."""


class Status(StrEnum):
    COLLECTING = "collecting"  # below the planned size: not enough data yet
    INCONCLUSIVE = "inconclusive"  # not significant: not enough data to conclude
    BETTER = "better"
    WORSE = "worse"


@dataclass(frozen=True)
class Arm:
    """Observed numbers of one arm."""

    name: str
    users: int
    conversions: int


@dataclass(frozen=True)
class ArmResult:
    name: str
    users: int
    conversions: int
    rate: float
    rate_ci_low: float
    """Wilson score interval of the arm's own rate (well-behaved at 0 and 1)."""
    rate_ci_high: float
    is_control: bool
    planned_share: float


@dataclass(frozen=True)
class Estimate:
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_value_adjusted: float
    """Bonferroni-adjusted (equal to p_value when only one arm is compared with control)."""


@dataclass(frozen=True)
class Comparison:
    arm: str
    control: str
    rate: float
    control_rate: float
    absolute: Estimate
    relative: Estimate | None
    """None when the control rate is 0 (a lift over nothing is undefined)."""
    chance_to_beat_control: float
    expected_loss: float
    """Rate given up, on average, by shipping this arm if control is in fact better."""
    expected_loss_control: float
    """Rate given up, on average, by keeping control if this arm is in fact better."""
    significant: bool
    status: Status
    explanation: dict[str, str]


@dataclass(frozen=True)
class SampleRatio:
    chi_square: float
    p_value: float
    flagged: bool
    expected_users: list[float]
    weights: list[float]


@dataclass(frozen=True)
class Plan:
    planned_users_per_arm: int
    progress: float
    """The smallest arm's users over the planned size, capped at 1."""
    is_reached: bool


@dataclass(frozen=True)
class Analysis:
    metric: str | None
    alpha: float
    confidence_level: float
    arms: list[ArmResult]
    comparisons: list[Comparison]
    sample_ratio: SampleRatio
    plan: Plan | None
    correction: str | None
    """"bonferroni" when more than one arm is compared with control."""
    notes: dict[str, list[str]]
    """Warnings and the multiple-comparison note, in zh_CN and en."""
    enough_data: bool
    """False while any arm is below the planned size or no comparison is significant."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SampleSize:
    baseline_rate: float
    target_rate: float
    absolute_effect: float
    relative_effect: float
    alpha: float
    alpha_per_comparison: float
    power: float
    arms: int
    users_per_arm: int
    total_users: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- validation --------------------------------------------------------------------------------


def _check_rate(value: float, field: str, *, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number", details={"field": field})
    if not low < value < high:
        raise InvalidInput(f"{field} must be between {low:g} and {high:g} (exclusive)", details={"field": field})
    return float(value)


def _check_count(value: object, arm: str, field: str, index: int) -> int:
    path = f"arms[{index}].{field}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"arm '{arm}': {field} must be a whole number", details={"field": path})
    if value < 0:
        raise InvalidInput(f"arm '{arm}': {field} must not be negative", details={"field": path})
    return value


def validate_arms(arms: Sequence[Arm]) -> list[Arm]:
    """Check arms for analysis; InvalidInput names the arm and field (`arms[1].conversions`)."""
    if len(arms) < 2:
        raise InvalidInput("at least 2 arms are needed: a control and one variant", details={"field": "arms"})
    if len(arms) > MAX_ARMS:
        raise InvalidInput(f"at most {MAX_ARMS} arms", details={"field": "arms"})
    seen: set[str] = set()
    for index, arm in enumerate(arms):
        name = arm.name.strip() if isinstance(arm.name, str) else ""
        if not name:
            raise InvalidInput(f"arm {index + 1} needs a name", details={"field": f"arms[{index}].name"})
        if name in seen:
            raise InvalidInput(f"arm '{name}' appears twice", details={"field": f"arms[{index}].name"})
        seen.add(name)
        users = _check_count(arm.users, name, "users", index)
        conversions = _check_count(arm.conversions, name, "conversions", index)
        if users == 0:
            raise InvalidInput(f"arm '{name}': users must be at least 1", details={"field": f"arms[{index}].users"})
        if conversions > users:
            raise InvalidInput(
                f"arm '{name}': conversions ({conversions}) exceed users ({users})",
                details={"field": f"arms[{index}].conversions"},
            )
    return [Arm(a.name.strip(), a.users, a.conversions) for a in arms]


# --- the building blocks -----------------------------------------------------------------------


def z_critical(alpha: float) -> float:
    """The two-sided normal quantile: 1.959964… for alpha 0.05."""
    return float(stats.norm.ppf(1 - alpha / 2))


def _two_sided_p(z: float) -> float:
    return float(min(1.0, 2 * stats.norm.sf(abs(z))))


def wilson_interval(users: int, conversions: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of one rate."""
    z = z_critical(alpha)
    p = conversions / users
    denominator = 1 + z * z / users
    centre = (p + z * z / (2 * users)) / denominator
    half = z * math.sqrt(p * (1 - p) / users + z * z / (4 * users * users)) / denominator
    # Exact at the edges (the formula gives 0.9999999999999999 for 10 of 10).
    low = 0.0 if conversions == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if conversions == users else min(1.0, max(p, centre + half))
    return low, high


def absolute_difference(control: Arm, arm: Arm, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(p1 − p0, CI low, CI high, p-value): unpooled Wald interval, pooled two-proportion z-test."""
    p0, p1 = control.conversions / control.users, arm.conversions / arm.users
    diff = p1 - p0
    half = z_critical(alpha) * math.sqrt(p0 * (1 - p0) / control.users + p1 * (1 - p1) / arm.users)
    pooled = (control.conversions + arm.conversions) / (control.users + arm.users)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / control.users + 1 / arm.users))
    p_value = 1.0 if se_pooled == 0 else _two_sided_p(diff / se_pooled)
    return diff, diff - half, diff + half, p_value


def relative_difference(control: Arm, arm: Arm, alpha: float = 0.05) -> tuple[float, float, float, float] | None:
    """(p1/p0 − 1, CI low, CI high, p-value) by the delta method; None when the control rate is 0."""
    p0, p1 = control.conversions / control.users, arm.conversions / arm.users
    if p0 == 0:
        return None
    lift = p1 / p0 - 1
    var0, var1 = p0 * (1 - p0) / control.users, p1 * (1 - p1) / arm.users
    se = math.sqrt(var1 / p0**2 + p1**2 * var0 / p0**4)
    half = z_critical(alpha) * se
    # A zero SE only happens with rates of exactly 0 or 1 in both arms: the Wald limit.
    p_value = (1.0 if lift == 0 else 0.0) if se == 0 else _two_sided_p(lift / se)
    return lift, lift - half, lift + half, p_value


def _normal_difference(a1: int, b1: int, a2: int, b2: int) -> tuple[float, float]:
    """Mean and SD of X1 − X2 for Beta posteriors, for the large-sample approximation."""
    m1, m2 = a1 / (a1 + b1), a2 / (a2 + b2)
    v1 = a1 * b1 / ((a1 + b1) ** 2 * (a1 + b1 + 1))
    v2 = a2 * b2 / ((a2 + b2) ** 2 * (a2 + b2 + 1))
    return m1 - m2, math.sqrt(v1 + v2)


def prob_greater(a1: int, b1: int, a2: int, b2: int) -> float:
    """P(X1 > X2) for independent X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2) with integer parameters.

    Evan Miller's closed form sums a1 terms; the smaller shape is summed (using the complement).
    """
    if a1 > a2:
        return 1.0 - prob_greater(a2, b2, a1, b1)
    if a1 > _EXACT_LIMIT:
        mean, sd = _normal_difference(a1, b1, a2, b2)
        return float(stats.norm.cdf(mean / sd))
    # P(X1 > X2) = Σ_{i<a1} B(a2+i, b1+b2) / ((b1+i)·B(1+i, b1)·B(a2, b2)), summed in log space.
    i = np.arange(a1, dtype=float)
    log_terms = betaln(a2 + i, b1 + b2) - np.log(b1 + i) - betaln(1 + i, b1) - betaln(a2, b2)
    return float(min(1.0, max(0.0, math.exp(float(logsumexp(log_terms))))))


def expected_loss(a1: int, b1: int, a2: int, b2: int) -> float:
    """E[max(X2 − X1, 0)]: what choosing X1 costs on average when X2 is in fact higher."""
    if min(a1, a2) > _EXACT_LIMIT:
        mean, sd = _normal_difference(a2, b2, a1, b1)
        return float(mean * stats.norm.cdf(mean / sd) + sd * stats.norm.pdf(mean / sd))
    m1, m2 = a1 / (a1 + b1), a2 / (a2 + b2)
    # E[X2·1{X2>X1}] = m2·P(Beta(a2+1, b2) > X1); E[X1·1{X2>X1}] = m1·P(X2 > Beta(a1+1, b1)).
    loss = m2 * prob_greater(a2 + 1, b2, a1, b1) - m1 * prob_greater(a2, b2, a1 + 1, b1)
    return max(0.0, loss)


def _posterior(arm: Arm) -> tuple[int, int]:
    return 1 + arm.conversions, 1 + arm.users - arm.conversions


def sample_ratio(arms: Sequence[Arm], weights: Sequence[float] | None = None) -> SampleRatio:
    """Chi-square test of the users per arm against the planned weights (equal when None)."""
    shares = [1.0] * len(arms) if weights is None else [float(w) for w in weights]
    if len(shares) != len(arms):
        raise InvalidInput(f"{len(shares)} weights for {len(arms)} arms", details={"field": "weights"})
    for index, weight in enumerate(shares):
        if not math.isfinite(weight) or weight <= 0:
            raise InvalidInput("weights must be positive numbers", details={"field": f"weights[{index}]"})
    total_users = sum(a.users for a in arms)
    expected = [total_users * w / sum(shares) for w in shares]
    chi_square = sum((a.users - e) ** 2 / e for a, e in zip(arms, expected, strict=True))
    p_value = float(stats.chi2.sf(chi_square, len(arms) - 1))
    return SampleRatio(chi_square, p_value, p_value < SRM_THRESHOLD, expected, shares)


def sample_size(
    *,
    baseline_rate: float,
    minimum_detectable_effect: float,
    relative: bool = True,
    power: float = 0.8,
    alpha: float = 0.05,
    arms: int = 2,
) -> SampleSize:
    """Users per arm for a two-sided two-proportion z-test (normal approximation, no continuity
    correction): n = (z₁₋α/2·√(2p̄(1−p̄)) + z₁₋β·√(p1(1−p1)+p2(1−p2)))² / (p2−p1)², p̄ = (p1+p2)/2,
    rounded up. With k > 1 treatment arms alpha is split (Bonferroni, alpha/k) as in the analysis.
    """
    p1 = _check_rate(baseline_rate, "baseline_rate")
    effect = _check_rate(minimum_detectable_effect, "minimum_detectable_effect", high=math.inf)
    power = _check_rate(power, "power")
    alpha = _check_rate(alpha, "alpha")
    if isinstance(arms, bool) or not isinstance(arms, int) or not 2 <= arms <= MAX_ARMS:
        raise InvalidInput(f"arms must be a whole number from 2 to {MAX_ARMS}", details={"field": "arms"})
    p2 = p1 * (1 + effect) if relative else p1 + effect
    if p2 >= 1:
        raise InvalidInput(
            f"baseline {p1:g} plus the effect gives a rate of {p2:g}, which is not below 1",
            details={"field": "minimum_detectable_effect"},
        )
    per_comparison = alpha / (arms - 1)
    z_alpha, z_beta = stats.norm.isf(per_comparison / 2), stats.norm.isf(1 - power)
    mean = (p1 + p2) / 2
    numerator = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    # An effect below float resolution leaves no difference (a division by zero), a tiny one an
    # infinite sample: either is a request no experiment can meet (found by tests/fuzz).
    users = float(max(numerator, 0.0)) ** 2 / (p2 - p1) ** 2 if (p2 - p1) ** 2 > 0 else math.inf
    if not math.isfinite(users):
        raise InvalidInput(
            "minimum_detectable_effect is too small to detect with any sample",
            details={"field": "minimum_detectable_effect"},
        )
    n = math.ceil(users - 1e-9)  # − ε: 1000.0000000001 is 1000
    n = max(n, 1)
    return SampleSize(p1, p2, p2 - p1, p2 / p1 - 1, alpha, per_comparison, power, arms, n, n * arms)


# --- the whole analysis ------------------------------------------------------------------------


def analyze(
    arms: Sequence[Arm],
    *,
    alpha: float = 0.05,
    planned_users_per_arm: int | None = None,
    weights: Sequence[float] | None = None,
    metric: str | None = None,
) -> Analysis:
    """Every figure of the test: arms[0] is the control, each other arm is compared with it."""
    arms = validate_arms(arms)
    alpha = _check_rate(alpha, "alpha", high=0.5)
    if planned_users_per_arm is not None and (
        isinstance(planned_users_per_arm, bool)
        or not isinstance(planned_users_per_arm, int)
        or planned_users_per_arm < 1
    ):
        raise InvalidInput(
            "planned_users_per_arm must be a positive whole number", details={"field": "planned_users_per_arm"}
        )
    srm = sample_ratio(arms, weights)
    control, treatments = arms[0], arms[1:]
    k = len(treatments)
    plan = None
    if planned_users_per_arm is not None:
        smallest = min(a.users for a in arms)
        plan = Plan(
            planned_users_per_arm, min(1.0, smallest / planned_users_per_arm), smallest >= planned_users_per_arm
        )
    comparisons = [_compare(control, arm, alpha=alpha, k=k, plan=plan, metric=metric) for arm in treatments]
    arm_results = []
    for index, arm in enumerate(arms):
        low, high = wilson_interval(arm.users, arm.conversions, alpha)
        share = srm.weights[index] / sum(srm.weights)
        arm_results.append(
            ArmResult(arm.name, arm.users, arm.conversions, arm.conversions / arm.users, low, high, index == 0, share)
        )
    from siyu.experiments.explain import analysis_notes  # the wording module reads this one's types

    notes = analysis_notes(srm, k)
    enough = (plan is None or plan.is_reached) and any(c.significant for c in comparisons)
    return Analysis(
        metric, alpha, 1 - alpha, arm_results, comparisons, srm, plan, "bonferroni" if k > 1 else None, notes, enough
    )


def _compare(control: Arm, arm: Arm, *, alpha: float, k: int, plan: Plan | None, metric: str | None) -> Comparison:
    diff, low, high, p_abs = absolute_difference(control, arm, alpha)
    absolute = Estimate(diff, low, high, p_abs, min(1.0, p_abs * k))
    rel = relative_difference(control, arm, alpha)
    relative = None if rel is None else Estimate(rel[0], rel[1], rel[2], rel[3], min(1.0, rel[3] * k))
    a0, b0 = _posterior(control)
    a1, b1 = _posterior(arm)
    significant = absolute.p_value_adjusted < alpha
    if plan is not None and not plan.is_reached:
        status = Status.COLLECTING
    elif not significant:
        status = Status.INCONCLUSIVE
    else:
        status = Status.BETTER if diff > 0 else Status.WORSE
    chance = prob_greater(a1, b1, a0, b0)
    from siyu.experiments.explain import explain  # the wording module reads this one's types

    explanation = explain(
        arm=arm.name,
        metric=metric,
        absolute=diff,
        relative=None if relative is None else relative.estimate,
        p_value=absolute.p_value_adjusted,
        chance=chance,
        status=status,
        significant=significant,
        plan=plan,
    )
    return Comparison(
        arm=arm.name,
        control=control.name,
        rate=arm.conversions / arm.users,
        control_rate=control.conversions / control.users,
        absolute=absolute,
        relative=relative,
        chance_to_beat_control=chance,
        expected_loss=expected_loss(a1, b1, a0, b0),
        expected_loss_control=expected_loss(a0, b0, a1, b1),
        significant=significant,
        status=status,
        explanation=explanation,
    )
