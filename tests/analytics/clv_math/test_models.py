"""BG/NBD and Gamma-Gamma: closed-form likelihoods, parameter recovery, predictions, degenerate data.

Recovery tolerances come from 30 repeated simulations of 20,000 customers (T uniform in 26–78
weeks) with the parameters below: the estimates were unbiased and their relative standard
deviations were r 1.4 %, α 2.4 %, a 5.3 %, b 7.6 %, p 5.5 %, q 2.4 %, v 8.1 %. Each tolerance is
about 3.5 standard deviations, so an honest fit on a fixed seed passes and a wrong formula
(which moves estimates by tens of per cent) fails.
"""

from __future__ import annotations

import math
from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import betaln, gammaln

from siyu.analytics.clv.models import (
    BgNbd,
    GammaGamma,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_purchases_new,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    holdout_validation,
    p_alive,
)
from siyu.analytics.clv.simulate import simulate_bgnbd, simulate_transactions
from siyu.analytics.clv.summary import summarize

TRUE_BG = SimpleNamespace(r=0.25, alpha=4.0, a=0.8, b=2.5)  # CDNOW-like, per week
TRUE_GG = SimpleNamespace(p=6.0, q=4.0, v=15.0)
TOLERANCE = {"r": 0.05, "alpha": 0.10, "a": 0.20, "b": 0.25, "p": 0.20, "q": 0.10, "v": 0.30}


def _direct_bgnbd_ll(r: float, alpha: float, a: float, b: float, x: float, t_x: float, T: float) -> float:
    """FHL 2005 eq. 6 written out per customer, without logs where possible (independent of the module)."""
    common = math.exp(gammaln(r + x) - gammaln(r)) * alpha**r
    alive = math.exp(betaln(a, b + x) - betaln(a, b)) * common / (alpha + T) ** (r + x)
    dead = 0.0
    if x > 0:
        dead = math.exp(betaln(a + 1, b + x - 1) - betaln(a, b)) * common / (alpha + t_x) ** (r + x)
    return math.log(alive + dead)


def _direct_gg_ll(p: float, q: float, v: float, x: float, m: float) -> float:
    """Density of the mean spend m̄ of x purchases, ν integrated out, written from the gamma densities."""
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * math.log(v)
        + (p * x - 1) * math.log(m)
        + p * x * math.log(x)
        - (p * x + q) * math.log(v + x * m)
    )


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261123)
    T = rng.uniform(26, 78, 20_000)
    return simulate_bgnbd(TRUE_BG, TRUE_GG, 20_000, T, rng)


def test_bgnbd_likelihood_of_one_customer_worked_by_hand() -> None:
    # r=1, α=1, a=1, b=2; a customer with x=1, t_x=1, T=2:
    #   alive term B(1,3)/B(1,2) · Γ(2)·1/(Γ(1)·3²) = (1/3)/(1/2) · 1/9 = 2/27
    #   dead term  B(2,2)/B(1,2) · Γ(2)·1/(Γ(1)·2²) = (1/6)/(1/2) · 1/4 = 1/12
    #   L = 2/27 + 1/12 = 17/108
    # and a customer with x=0, T=2: B(1,2)/B(1,2) · 1/3 = 1/3.
    assert bgnbd_log_likelihood(1, 1, 1, 2, np.array([1.0]), np.array([1.0]), np.array([2.0])) == pytest.approx(
        math.log(17 / 108)
    )
    assert _direct_bgnbd_ll(1, 1, 1, 2, 1, 1, 2) == pytest.approx(math.log(17 / 108))
    both = bgnbd_log_likelihood(1, 1, 1, 2, np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([2.0, 2.0]))
    assert both == pytest.approx(math.log(17 / 108) + math.log(1 / 3))
    # weights count a row several times
    weighted = bgnbd_log_likelihood(
        1, 1, 1, 2, np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([2.0, 2.0]), weights=np.array([3, 2])
    )
    assert weighted == pytest.approx(3 * math.log(17 / 108) + 2 * math.log(1 / 3))


def test_gamma_gamma_likelihood_of_one_customer_worked_by_hand() -> None:
    # p=1, q=2, v=1, x=1, m̄=1: Γ(3)/(Γ(1)Γ(2)) · 1² · 1¹ · 1⁰ / (1 + 1)³ = 2/8 = 1/4
    assert gamma_gamma_log_likelihood(1, 2, 1, np.array([1.0]), np.array([1.0])) == pytest.approx(math.log(1 / 4))
    # rows with x = 0 are not part of the spend likelihood
    assert gamma_gamma_log_likelihood(1, 2, 1, np.array([1.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(
        math.log(1 / 4)
    )


def test_fit_recovers_known_parameters(simulated: tuple[np.ndarray, ...]) -> None:
    frequency, recency, T, monetary = simulated

    bg = fit_bgnbd(frequency, recency, T)
    gg = fit_gamma_gamma(frequency, monetary)

    for name in ("r", "alpha", "a", "b"):
        truth = getattr(TRUE_BG, name)
        assert abs(getattr(bg, name) - truth) / truth < TOLERANCE[name], (name, getattr(bg, name))
    for name in ("p", "q", "v"):
        truth = getattr(TRUE_GG, name)
        assert abs(getattr(gg, name) - truth) / truth < TOLERANCE[name], (name, getattr(gg, name))
    assert gg.customers == int((frequency > 0).sum())
    # a maximum: at least as likely as the true parameters
    assert bg.log_likelihood >= bgnbd_log_likelihood(0.25, 4.0, 0.8, 2.5, frequency, recency, T)
    assert gg.log_likelihood >= gamma_gamma_log_likelihood(6.0, 4.0, 15.0, frequency, monetary)


def test_fitted_log_likelihoods_equal_a_direct_per_customer_evaluation(simulated: tuple[np.ndarray, ...]) -> None:
    frequency, recency, T, monetary = simulated
    sample = slice(0, 2_000)
    f, t, big_t, m = frequency[sample], recency[sample], T[sample], monetary[sample]

    bg = fit_bgnbd(f, t, big_t)
    gg = fit_gamma_gamma(f, m)

    direct_bg = sum(
        _direct_bgnbd_ll(bg.r, bg.alpha, bg.a, bg.b, xi, ti, Ti) for xi, ti, Ti in zip(f, t, big_t, strict=True)
    )
    direct_gg = sum(_direct_gg_ll(gg.p, gg.q, gg.v, xi, mi) for xi, mi in zip(f, m, strict=True) if xi > 0)
    assert bg.log_likelihood == pytest.approx(direct_bg, rel=1e-9)
    assert gg.log_likelihood == pytest.approx(direct_gg, rel=1e-9)


def test_predictions_agree_with_the_model_identities() -> None:
    m = BgNbd(r=0.25, alpha=4.0, a=0.8, b=2.5, log_likelihood=0.0)
    # a customer just acquired (x=0, t_x=0, T=0) is the unconditional case
    assert expected_purchases(m, 52, np.array([0.0]), np.array([0.0]), np.array([0.0]))[0] == pytest.approx(
        expected_purchases_new(m, 52), rel=1e-9
    )
    # nobody without repeats has been seen to drop out; a long silence after many repeats lowers P(alive)
    alive = p_alive(m, np.array([0.0, 5.0, 5.0]), np.array([0.0, 30.0, 5.0]), np.array([30.0, 30.0, 30.0]))
    assert alive[0] == 1.0 and 0 < alive[2] < alive[1] <= 1
    # P(alive) by hand for x=1, t_x=1, T=2 under r=1, α=1, a=1, b=2: odds a/(b+x−1)·((α+T)/(α+t_x))^(r+x)
    #   = 1/2 · (3/2)² = 9/8, so P = 1/(1 + 9/8) = 8/17
    hand = BgNbd(r=1, alpha=1, a=1, b=2, log_likelihood=0.0)
    assert p_alive(hand, np.array([1.0]), np.array([1.0]), np.array([2.0]))[0] == pytest.approx(8 / 17)
    assert expected_purchases(m, 0, np.array([3.0]), np.array([2.0]), np.array([5.0])).tolist() == [0.0]
    assert expected_purchases_new(m, 0) == 0.0


def test_unconditional_expectation_matches_simulation() -> None:
    # E[X(52)] against the mean frequency of 20,000 customers simulated for 52 weeks; allowed
    # difference 4 standard errors of that mean.
    rng = np.random.default_rng(7)
    frequency, _, _, _ = simulate_bgnbd(TRUE_BG, None, 20_000, 52.0, rng)
    se = frequency.std() / math.sqrt(frequency.shape[0])
    assert abs(expected_purchases_new(TRUE_BG, 52) - frequency.mean()) < 4 * se  # type: ignore[arg-type]


def test_expected_spend_shrinks_towards_the_population_mean() -> None:
    gg = GammaGamma(p=6.0, q=4.0, v=15.0, log_likelihood=0.0, customers=1)
    # population mean p·v/(q−1) = 6·15/3 = 30; x=2, m̄=60: 6·(15 + 120)/(12 + 3) = 54
    assert expected_spend(gg, np.array([0.0, 2.0]), np.array([0.0, 60.0])).tolist() == pytest.approx([30.0, 54.0])


def test_holdout_predictions_match_actuals_on_simulated_orders() -> None:
    # 20,000 customers acquired over 12 weeks, calibration to day 272, holdout 39 weeks after.
    rng = np.random.default_rng(11)
    ids, days, amounts = simulate_transactions(
        TRUE_BG, TRUE_GG, 20_000, rng, start=date(2025, 1, 1), days=546, acquisition_days=84
    )
    s = summarize(ids, days, amounts, calibration_end=date(2025, 9, 30), holdout_end=date(2026, 6, 30))
    bg = fit_bgnbd(s.frequency, s.recency, s.T)

    buckets = holdout_validation(bg, s, 273 / 7)

    assert [b.label for b in buckets] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(b.customers for b in buckets) == len(s) == 20_000
    assert s.holdout_frequency is not None
    for b in buckets:
        # allowed: 4 standard errors of the bucket's actual mean, plus 5 % for day rounding of the data
        mask = np.minimum(s.frequency, 7) == (7 if b.label == "7+" else int(b.label))
        se = s.holdout_frequency[mask].std() / math.sqrt(b.customers)
        assert abs(b.predicted - b.actual) <= 4 * se + 0.05 * b.actual, b
    predicted_total = sum(b.predicted * b.customers for b in buckets)
    assert predicted_total == pytest.approx(s.holdout_frequency.sum(), rel=0.05)


def test_holdout_validation_needs_a_holdout() -> None:
    ids = np.array([1, 1])
    days = np.array(["2026-01-01", "2026-01-05"], dtype="datetime64[D]")
    s = summarize(ids, days, np.array([1.0, 2.0]), calibration_end=date(2026, 2, 1))
    with pytest.raises(ValueError, match="holdout"):
        holdout_validation(BgNbd(1, 1, 1, 1, 0), s, 4.0)


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 6.0, 7.0], "repeat purchase"),
        ([2.0], [1.0], [5.0], "at least 2 customers"),
        ([], [], [], "at least 2 customers"),
        ([1.0, 2.0], [3.0, 1.0], [2.0, 5.0], "between 0 and T"),
        ([1.5, 2.0], [1.0, 1.0], [2.0, 5.0], "whole number"),
        ([1.0, np.nan], [1.0, 1.0], [2.0, 5.0], "finite"),
    ],
)
def test_bgnbd_on_degenerate_data_is_a_clear_value_error(
    frequency: list[float], recency: list[float], T: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_bgnbd(np.array(frequency), np.array(recency), np.array(T))


@pytest.mark.parametrize(
    ("frequency", "monetary", "message"),
    [
        ([0.0, 0.0], [0.0, 0.0], "at least 2 repeat buyers"),
        ([3.0, 0.0], [10.0, 0.0], "at least 2 repeat buyers"),
        ([1.0, 2.0, 3.0], [10.0, 10.0, 10.0], "same mean spend"),
    ],
)
def test_gamma_gamma_on_degenerate_data_is_a_clear_value_error(
    frequency: list[float], monetary: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_gamma_gamma(np.array(frequency), np.array(monetary))


def test_small_real_looking_data_fits_to_finite_numbers() -> None:
    # a handful of customers is thin but legal: the fit returns finite parameters, never NaN
    frequency = np.array([0, 0, 1, 2, 0, 3, 1, 0], dtype=float)
    recency = np.array([0, 0, 4, 10, 0, 20, 2, 0], dtype=float)
    T = np.array([30, 12, 20, 25, 5, 30, 8, 40], dtype=float)
    bg = fit_bgnbd(frequency, recency, T)
    values = [bg.r, bg.alpha, bg.a, bg.b, bg.log_likelihood]
    assert all(math.isfinite(v) and v != 0 for v in values)
    predicted = expected_purchases(bg, 52, frequency, recency, T)
    assert np.isfinite(predicted).all() and (predicted >= 0).all()


def test_analytic_gradient_matches_finite_differences(simulated: tuple[np.ndarray, ...]) -> None:
    # the fit's objective (per-distinct-x evaluation, weights) against the plain summed likelihood
    from scipy.optimize import approx_fprime

    from siyu.analytics.clv.models import _bgnbd_objective

    frequency, recency, T, _ = simulated
    f, t, big_t = frequency[:3_000], recency[:3_000], T[:3_000]
    objective = _bgnbd_objective(f, t, big_t, np.ones(f.shape[0]))
    for log_params in (np.log([0.3, 5.0, 0.7, 2.0]), np.log([1.0, 30.0, 1.0, 1.0])):

        def ll(lp: np.ndarray) -> float:
            r, alpha, a, b = (float(v) for v in np.exp(lp))
            return bgnbd_log_likelihood(r, alpha, a, b, f, t, big_t)

        value, gradient = objective(log_params)
        assert value == pytest.approx(ll(log_params), rel=1e-12)
        assert gradient == pytest.approx(approx_fprime(log_params, ll, 1e-6), rel=1e-3, abs=1e-2)
