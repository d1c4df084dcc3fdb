"""The statistics against values computed independently with statsmodels and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps
from statsmodels.stats._delta_method import NonlinearDeltaCov
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

from siyu.experiments.stats import (
    Arm,
    Status,
    analyze,
    expected_loss,
    prob_greater,
    sample_ratio,
    sample_size,
)
from siyu.kit.errors import InvalidInput

TIGHT = {"rel": 1e-9, "abs": 1e-12}

CONTROL = Arm("control", 1000, 120)
B = Arm("B", 1000, 150)


def _beats_by_integration(a1: int, b1: int, a2: int, b2: int) -> float:
    """P(X1 > X2) = ∫ f2(x)·P(X1 > x) dx, by quadrature (independent of the closed form)."""
    x1, x2 = sps.beta(a1, b1), sps.beta(a2, b2)
    value, _ = integrate.quad(lambda x: x2.pdf(x) * x1.sf(x), 0, 1, points=[x2.mean()], limit=500, epsabs=1e-13)
    return float(value)


def _loss_by_integration(a1: int, b1: int, a2: int, b2: int) -> float:
    """E[max(X2 − X1, 0)] = ∫ f1(t)·E[max(X2 − t, 0)] dt with E[max(X2 − t, 0)] = ∫_t^1 (x − t) f2(x) dx."""
    x1, x2 = sps.beta(a1, b1), sps.beta(a2, b2)

    def inner(t: float) -> float:
        value, _ = integrate.quad(lambda x: (x - t) * x2.pdf(x), t, 1, limit=200, epsabs=1e-14)
        return float(value)

    value, _ = integrate.quad(lambda t: x1.pdf(t) * inner(t), 0, 1, points=[x1.mean()], limit=200, epsabs=1e-13)
    return float(value)


def test_absolute_difference_matches_statsmodels() -> None:
    # given 12% vs 15% on 1000 users each
    result = analyze([CONTROL, B])
    comparison = result.comparisons[0]
    # then the z-test (pooled) and the Wald interval (unpooled) are statsmodels'
    _z, p = proportions_ztest([150, 120], [1000, 1000])
    low, high = confint_proportions_2indep(150, 1000, 120, 1000, method="wald", compare="diff", alpha=0.05)
    assert comparison.absolute.estimate == pytest.approx(0.03, **TIGHT)
    assert comparison.absolute.p_value == pytest.approx(p, **TIGHT)
    assert comparison.absolute.p_value == pytest.approx(0.04964038686536878, rel=1e-9)
    assert (comparison.absolute.ci_low, comparison.absolute.ci_high) == (
        pytest.approx(low, **TIGHT),
        pytest.approx(high, **TIGHT),
    )
    assert comparison.absolute.p_value_adjusted == comparison.absolute.p_value  # one comparison: no correction
    assert result.correction is None
    assert (comparison.rate, comparison.control_rate) == (0.15, 0.12)


def test_relative_difference_by_the_delta_method_matches_statsmodels() -> None:
    result = analyze([CONTROL, B])
    relative = result.comparisons[0].relative
    assert relative is not None
    # statsmodels' generic delta method on f(p0, p1) = p1/p0 − 1 with the binomial variances
    p0, p1 = 0.12, 0.15
    delta = NonlinearDeltaCov(
        lambda params: np.array([params[1] / params[0] - 1]),
        np.array([p0, p1]),
        np.diag([p0 * (1 - p0) / 1000, p1 * (1 - p1) / 1000]),
    )
    se = float(delta.se_vectorized()[0])
    z = sps.norm.ppf(0.975)
    assert relative.estimate == pytest.approx(0.25, **TIGHT)
    assert relative.ci_low == pytest.approx(0.25 - z * se, rel=1e-6)
    assert relative.ci_high == pytest.approx(0.25 + z * se, rel=1e-6)
    assert relative.p_value == pytest.approx(2 * sps.norm.sf(0.25 / se), rel=1e-6)
    assert (round(relative.ci_low, 6), round(relative.ci_high, 6)) == (-0.029338, 0.529338)


def test_arm_rates_carry_the_wilson_interval_of_statsmodels() -> None:
    result = analyze([CONTROL, B])
    for arm, (n, c) in zip(result.arms, [(1000, 120), (1000, 150)], strict=True):
        low, high = proportion_confint(c, n, alpha=0.05, method="wilson")
        assert (arm.rate_ci_low, arm.rate_ci_high) == (pytest.approx(low, **TIGHT), pytest.approx(high, **TIGHT))
    assert [a.is_control for a in result.arms] == [True, False]


def test_chance_to_beat_control_and_expected_loss_match_numeric_integration() -> None:
    result = analyze([CONTROL, B])
    comparison = result.comparisons[0]
    # posteriors Beta(1 + c, 1 + n − c)
    a0, b0, a1, b1 = 121, 881, 151, 851
    assert comparison.chance_to_beat_control == pytest.approx(_beats_by_integration(a1, b1, a0, b0), abs=1e-9)
    assert comparison.chance_to_beat_control == pytest.approx(0.9750678368, abs=1e-9)
    assert comparison.expected_loss == pytest.approx(_loss_by_integration(a1, b1, a0, b0), abs=1e-9)
    assert comparison.expected_loss_control == pytest.approx(_loss_by_integration(a0, b0, a1, b1), abs=1e-9)
    # E[p1 − p0] = loss of keeping control − loss of shipping B
    mean_diff = a1 / (a1 + b1) - a0 / (a0 + b0)
    assert comparison.expected_loss_control - comparison.expected_loss == pytest.approx(mean_diff, abs=1e-12)


def test_bayesian_figures_agree_with_a_seeded_monte_carlo() -> None:
    rng = np.random.default_rng(20261123)
    draws0, draws1 = rng.beta(121, 881, 2_000_000), rng.beta(151, 851, 2_000_000)
    comparison = analyze([CONTROL, B]).comparisons[0]
    assert comparison.chance_to_beat_control == pytest.approx(float(np.mean(draws1 > draws0)), abs=0.001)
    assert comparison.expected_loss == pytest.approx(float(np.mean(np.maximum(draws0 - draws1, 0))), abs=2e-5)


def test_large_samples_use_a_normal_approximation_close_to_the_exact_sum() -> None:
    # given 600k successes per arm (above the exact limit) and the same counts just below it
    big = prob_greater(600_400, 5_399_600, 600_000, 5_400_000)
    mean = 600_401 / 6_000_002 - 600_001 / 6_000_002
    sd = math.sqrt(2 * (0.1 * 0.9) / 6_000_003)
    assert big == pytest.approx(sps.norm.cdf(mean / sd), abs=1e-4)
    assert prob_greater(400_400, 3_599_600, 400_000, 3_600_000) == pytest.approx(
        sps.norm.cdf((400_400 - 400_000) / 4_000_000 / math.sqrt(2 * 0.09 / 4_000_000)), abs=2e-3
    )
    assert expected_loss(600_000, 5_400_000, 600_000, 5_400_000) == pytest.approx(sd / math.sqrt(2 * math.pi), rel=1e-3)


def test_sample_ratio_mismatch_is_scipys_chi_square_and_flags_below_0_001() -> None:
    # given a planned 50/50 split that came out 1000 / 1160
    result = sample_ratio([Arm("A", 1000, 10), Arm("B", 1160, 10)], [50, 50])
    expected = sps.chisquare([1000, 1160], [1080, 1080])
    assert result.chi_square == pytest.approx(expected.statistic, **TIGHT)
    assert result.p_value == pytest.approx(expected.pvalue, **TIGHT)
    assert result.p_value == pytest.approx(sps.chi2.sf(result.chi_square, 1), **TIGHT)
    assert result.flagged is True and result.p_value < 0.001
    # a 70/30 plan that came out 700/300 is fine; unequal weights are honoured
    fine = sample_ratio([Arm("A", 700, 10), Arm("B", 300, 10)], [70, 30])
    assert (fine.chi_square, fine.p_value, fine.flagged) == (0.0, 1.0, False)
    three = sample_ratio([Arm("A", 510, 1), Arm("B", 260, 1), Arm("C", 230, 1)], [2, 1, 1])
    check = sps.chisquare([510, 260, 230], [500, 250, 250])
    assert (three.chi_square, three.p_value) == (pytest.approx(check.statistic), pytest.approx(check.pvalue))
    assert three.expected_users == [500.0, 250.0, 250.0]


def test_several_arms_get_bonferroni_adjusted_p_values_and_a_note() -> None:
    arms = [Arm("control", 2000, 200), Arm("B", 2000, 240), Arm("C", 2000, 190)]
    result = analyze(arms)
    raw = [c.absolute.p_value for c in result.comparisons]
    _, adjusted, _, _ = multipletests(raw, method="bonferroni")
    assert [c.absolute.p_value_adjusted for c in result.comparisons] == [pytest.approx(p, **TIGHT) for p in adjusted]
    assert result.correction == "bonferroni"
    assert result.notes["zh_CN"] == ["共有 2 个方案分别与对照比较，p 值已按 Bonferroni 校正（乘以 2）。"]
    assert result.notes["en"] == ["2 variants are each compared with control; p-values are Bonferroni-adjusted (× 2)."]
    # B: raw p ≈ 0.043 is significant alone but not after the correction (0.086)
    assert raw[0] == pytest.approx(proportions_ztest([240, 200], [2000, 2000])[1], **TIGHT)
    assert raw[0] < 0.05 < result.comparisons[0].absolute.p_value_adjusted
    assert result.comparisons[0].status == Status.INCONCLUSIVE


def test_sample_size_matches_statsmodels() -> None:
    plan = sample_size(baseline_rate=0.12, minimum_detectable_effect=0.2)
    exact = samplesize_proportions_2indep_onetail(diff=0.024, prop2=0.12, power=0.8, alpha=0.05)
    assert plan.users_per_arm == math.ceil(exact) == 3122
    assert (plan.target_rate, plan.total_users) == (pytest.approx(0.144), 6244)
    # the arcsine (Cohen's h) approximation lands within 1 %
    arcsine = NormalIndPower().solve_power(proportion_effectsize(0.144, 0.12), power=0.8, alpha=0.05)
    assert plan.users_per_arm == pytest.approx(arcsine, rel=0.01)
    absolute = sample_size(baseline_rate=0.05, minimum_detectable_effect=0.01, relative=False, power=0.9, alpha=0.01)
    exact = samplesize_proportions_2indep_onetail(diff=0.01, prop2=0.05, power=0.9, alpha=0.01)
    assert absolute.users_per_arm == math.ceil(exact)
    # three arms: two comparisons share alpha (Bonferroni)
    three = sample_size(baseline_rate=0.12, minimum_detectable_effect=0.2, arms=3)
    exact = samplesize_proportions_2indep_onetail(diff=0.024, prop2=0.12, power=0.8, alpha=0.025)
    assert (three.users_per_arm, three.alpha_per_comparison, three.total_users) == (
        math.ceil(exact),
        0.025,
        3 * math.ceil(exact),
    )


@pytest.mark.parametrize(
    ("arms", "field", "message"),
    [
        ([Arm("control", 100, 10)], "arms", "at least 2 arms"),
        ([Arm("control", 100, 10), Arm("B", 100, 101)], "arms[1].conversions", "arm 'B': conversions (101) exceed"),
        ([Arm("control", -1, 0), Arm("B", 100, 1)], "arms[0].users", "arm 'control': users must not be negative"),
        ([Arm("control", 100, -3), Arm("B", 100, 1)], "arms[0].conversions", "must not be negative"),
        ([Arm("control", 100, 1), Arm("B", 0, 0)], "arms[1].users", "arm 'B': users must be at least 1"),
        ([Arm("control", 100, 1), Arm("control", 10, 0)], "arms[1].name", "appears twice"),
        ([Arm("", 100, 1), Arm("B", 10, 0)], "arms[0].name", "arm 1 needs a name"),
    ],
)
def test_bad_arms_name_the_arm_and_field(arms: list[Arm], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        analyze(arms)
    assert raised.value.details == {"field": field}
    assert message in raised.value.message


def test_bad_planning_inputs_name_the_field() -> None:
    with pytest.raises(InvalidInput) as raised:
        sample_size(baseline_rate=0.6, minimum_detectable_effect=1.0)
    assert raised.value.details == {"field": "minimum_detectable_effect"}
    for kwargs, field in [
        ({"baseline_rate": 0.0, "minimum_detectable_effect": 0.1}, "baseline_rate"),
        ({"baseline_rate": 0.1, "minimum_detectable_effect": -0.1}, "minimum_detectable_effect"),
        ({"baseline_rate": 0.1, "minimum_detectable_effect": 0.1, "power": 1.0}, "power"),
        ({"baseline_rate": 0.1, "minimum_detectable_effect": 0.1, "alpha": math.nan}, "alpha"),
        ({"baseline_rate": 0.1, "minimum_detectable_effect": 0.1, "arms": 1}, "arms"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            sample_size(**kwargs)  # type: ignore[arg-type]
        assert raised.value.details == {"field": field}
    with pytest.raises(InvalidInput) as raised:
        analyze([CONTROL, B], weights=[1, 0])
    assert raised.value.details == {"field": "weights[1]"}
    with pytest.raises(InvalidInput) as raised:
        analyze([CONTROL, B], weights=[1])
    assert raised.value.details == {"field": "weights"}
    with pytest.raises(InvalidInput) as raised:
        analyze([CONTROL, B], planned_users_per_arm=0)
    assert raised.value.details == {"field": "planned_users_per_arm"}


def test_explanations_in_plain_chinese_and_english() -> None:
    # not significant, no plan: "not enough data yet"
    weak = analyze([Arm("control", 400, 48), Arm("B", 400, 60)], metric="add_rate").comparisons[0]
    assert weak.status == Status.INCONCLUSIVE
    assert weak.explanation == {
        "zh_CN": "B 的添加率高 25%，但数据还不足以下结论（差异不显著，p = 0.214）",
        "en": "B's add rate is 25% higher, but there is not enough data yet to conclude (not significant, p = 0.214)",
    }
    # below the planned size, even when significant
    early = analyze([CONTROL, B], metric="add_rate", planned_users_per_arm=3122).comparisons[0]
    assert early.status == Status.COLLECTING
    assert early.explanation["zh_CN"] == (
        "B 的添加率高 25%，但数据还不足以下结论（已收集计划样本量的 32%；未到计划样本量时的显著结果并不可靠）"
    )
    assert early.explanation["en"].startswith(
        "B's add rate is 25% higher, but there is not enough data yet to conclude (32% of the planned sample"
    )
    # plan reached and significantly better
    better = analyze([Arm("control", 4000, 480), Arm("B", 4000, 600)], metric="add_rate", planned_users_per_arm=3122)
    assert better.enough_data is True
    assert better.comparisons[0].explanation == {
        "zh_CN": "B 的添加率高 25%，差异显著（p < 0.001），B 胜过对照的概率为 >99.9%",
        "en": "B's add rate is 25% higher and the difference is significant (p < 0.001); "
        "B beats control with >99.9% probability",
    }
    # significantly worse
    worse = analyze([Arm("control", 4000, 600), Arm("C", 4000, 480)], metric="click_rate").comparisons[0]
    assert worse.status == Status.WORSE
    assert worse.explanation == {
        "zh_CN": "C 的点击率低 20%，差异显著（p < 0.001）：C 比对照差",
        "en": "C's click rate is 20% lower and the difference is significant (p < 0.001): C is worse than control",
    }
    # plan reached but still not significant; control at zero is said in percentage points
    flat = analyze([Arm("control", 500, 0), Arm("B", 500, 2)], planned_users_per_arm=500).comparisons[0]
    assert flat.relative is None
    assert flat.explanation["zh_CN"] == (
        "B 的转化率高 0.4 个百分点，但数据还不足以下结论：已达到计划样本量，差异仍不显著（p = 0.157）"
    )
    same = analyze([Arm("control", 100, 10), Arm("B", 100, 10)], metric="first_order_rate").comparisons[0]
    assert same.explanation["en"].startswith("B's first-order rate is the same as control's, but")


def test_srm_warning_is_a_note() -> None:
    result = analyze([Arm("control", 1000, 100), Arm("B", 1200, 120)])
    assert result.sample_ratio.flagged is True
    assert result.notes["en"][0].startswith("Warning: sample ratio mismatch (SRM, p < 0.001)")
    assert result.notes["zh_CN"][0].startswith("警告：样本比例不匹配（SRM，p < 0.001）")


def test_degenerate_rates_give_finite_figures() -> None:
    zero = analyze([Arm("control", 50, 0), Arm("B", 50, 0)]).comparisons[0]
    assert (zero.absolute.estimate, zero.absolute.ci_low, zero.absolute.ci_high, zero.absolute.p_value) == (
        0.0,
        0.0,
        0.0,
        1.0,
    )
    assert zero.relative is None and zero.chance_to_beat_control == pytest.approx(0.5, abs=1e-12)
    full = analyze([Arm("control", 50, 50), Arm("B", 50, 50)]).comparisons[0]
    assert full.relative is not None and full.relative.p_value == 1.0
    assert analyze([Arm("control", 1, 0), Arm("B", 1, 1)]).to_dict()["comparisons"][0]["absolute"]["p_value"] == (
        pytest.approx(proportions_ztest([1, 0], [1, 1])[1])
    )


# --- properties --------------------------------------------------------------------------------

counts = st.integers(min_value=1, max_value=5000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n))
)


@settings(max_examples=60, deadline=None)
@given(control=counts, treatment=counts)
def test_intervals_contain_the_estimate_and_p_values_are_probabilities(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = analyze([Arm("control", *control), Arm("B", *treatment)])
    c = result.comparisons[0]
    for estimate in [c.absolute] + ([c.relative] if c.relative else []):
        assert estimate.ci_low <= estimate.estimate <= estimate.ci_high
        assert 0.0 <= estimate.p_value <= estimate.p_value_adjusted <= 1.0
    assert 0.0 <= c.chance_to_beat_control <= 1.0
    assert c.expected_loss >= 0.0 and c.expected_loss_control >= 0.0
    assert 0.0 <= result.sample_ratio.p_value <= 1.0
    for arm in result.arms:
        assert 0.0 <= arm.rate_ci_low <= arm.rate <= arm.rate_ci_high <= 1.0


@settings(max_examples=40, deadline=None)
@given(control=counts, treatment=counts)
def test_swapping_the_arms_mirrors_the_chance_to_beat(control: tuple[int, int], treatment: tuple[int, int]) -> None:
    forward = analyze([Arm("A", *control), Arm("B", *treatment)]).comparisons[0]
    backward = analyze([Arm("B", *treatment), Arm("A", *control)]).comparisons[0]
    assert forward.chance_to_beat_control + backward.chance_to_beat_control == pytest.approx(1.0, abs=1e-9)
    assert forward.expected_loss == pytest.approx(backward.expected_loss_control, abs=1e-12)
    assert forward.absolute.p_value == pytest.approx(backward.absolute.p_value, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    baseline=st.floats(min_value=0.01, max_value=0.5),
    small=st.floats(min_value=0.02, max_value=0.5),
    factor=st.floats(min_value=1.05, max_value=3.0),
    power=st.floats(min_value=0.5, max_value=0.99),
)
def test_sample_size_shrinks_as_the_effect_grows(baseline: float, small: float, factor: float, power: float) -> None:
    large = small * factor
    assume(baseline * (1 + large) < 0.99)
    n_small = sample_size(baseline_rate=baseline, minimum_detectable_effect=small, power=power).users_per_arm
    n_large = sample_size(baseline_rate=baseline, minimum_detectable_effect=large, power=power).users_per_arm
    assert n_large <= n_small
    more_power = sample_size(baseline_rate=baseline, minimum_detectable_effect=small, power=min(0.995, power + 0.004))
    assert more_power.users_per_arm >= n_small
