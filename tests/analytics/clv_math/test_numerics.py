"""BG/NBD predictions where scipy's hyp2f1 gives up, fits that run into the parameter wall, and
the published CDNOW worked example (Fader, Hardie & Lee 2005)."""

from __future__ import annotations

import math
from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import integrate, special

from siyu.analytics.clv.models import (
    BgNbd,
    _log_hyp2f1_series,
    expected_purchases,
    expected_purchases_new,
    fit_bgnbd,
    p_alive,
)
from siyu.analytics.clv.simulate import simulate_transactions
from siyu.analytics.clv.summary import summarize

CUSTOMER = (np.array(2.0), np.array(30.43), np.array(38.86))  # x, t_x, T
CDNOW = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)  # FHL 2005, per week


def test_cdnow_worked_example() -> None:
    # FHL 2005 (and Fader & Hardie's note "Computing E[Y(t)|x,t_x,T]"): customer x=2, t_x=30.43,
    # T=38.86 weeks, expected purchases in the next 39 weeks = 1.226.
    assert round(float(expected_purchases(CDNOW, 39, *CUSTOMER)), 3) == 1.226
    # P(alive) = 1 / (1 + a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))
    #          = 1 / (1 + 0.793/3.426 · (43.274/34.844)^2.243)
    #          = 1 / (1 + 0.231465 · 1.625805) = 1 / 1.376320 = 0.72658
    expected = 1 / (1 + 0.793 / 3.426 * (43.274 / 34.844) ** 2.243)
    assert float(p_alive(CDNOW, *CUSTOMER)) == pytest.approx(expected, rel=1e-12)
    assert round(expected, 4) == 0.7266


def _fixed_rate_expectation(lam: float, a: float, b: float, x: int, t_x: float, big_t: float, t: float) -> float:
    """E[Y(t) | x, t_x, T] when every customer buys at rate λ (the r, α → ∞ limit), by quadrature over p.

    Given p: alive part (1−p)^x e^{−λT}, dropped part p(1−p)^{x−1} e^{−λ t_x} (x > 0), and an alive
    customer buys (1 − e^{−λpt})/p in the next t. Both scaled by e^{λT}; Beta weight via weight="alg".
    """
    w = {"weight": "alg", "wvar": (a - 1, b - 1)}
    num = integrate.quad(lambda p: (1 - p) ** x * (-math.expm1(-lam * p * t) / p if p > 0 else lam * t), 0, 1, **w)[0]
    den = integrate.quad(
        lambda p: (1 - p) ** x + (p * (1 - p) ** (x - 1) * math.exp(lam * (big_t - t_x)) if x > 0 else 0.0),
        0,
        1,
        **w,
    )[0]
    return num / den


@pytest.mark.parametrize(("r", "alpha"), [(5e4, 5e5), (1e5, 1e6), (1e7, 1e8)])
def test_expected_purchases_for_a_nearly_homogeneous_base_are_not_zero(r: float, alpha: float) -> None:
    # scipy's hyp2f1 returns NaN here; this used to come out as 0 expected purchases for everyone
    m = BgNbd(r=r, alpha=alpha, a=0.8, b=2.5, log_likelihood=0.0)
    x = np.array([0, 3, 10, 1])
    t_x = np.array([0.0, 15.0, 50.0, 2.0])
    big_t = np.array([10.0, 20.0, 52.0, 40.0])
    assert np.isnan(special.hyp2f1(r + x, 2.5 + x, 0.8 + 2.5 + x - 1, 52 / (alpha + big_t + 52))).all()

    got = expected_purchases(m, 52, x, t_x, big_t)

    lam = r / alpha  # Gamma sd/mean = 1/√r ≤ 0.5 %: the fixed-rate limit is right to well within 0.1 %
    want = [
        _fixed_rate_expectation(lam, 0.8, 2.5, int(xi), ti, Ti, 52) for xi, ti, Ti in zip(x, t_x, big_t, strict=True)
    ]
    assert got == pytest.approx(want, rel=1e-3)
    new = expected_purchases_new(m, 52)
    assert new == pytest.approx(_fixed_rate_expectation(lam, 0.8, 2.5, 0, 0, 0, 52), rel=1e-3)


def test_log_space_series_agrees_with_scipy_where_scipy_works() -> None:
    big_a = np.array([2.243, 0.25, 50.0, 1e3, 3.0])
    big_b = np.array([4.426, 2.5, 3.0, 1.5, 0.4])
    c = np.array([4.219, 2.3, 2.5, 2.2, 0.9])
    z = np.array([39 / 82.274, 0.9, 0.1, 1e-3, 0.0])

    got = np.exp(_log_hyp2f1_series(big_a, big_b, c, z))

    assert got == pytest.approx(special.hyp2f1(big_a, big_b, c, z), rel=1e-10)
    assert np.isnan(_log_hyp2f1_series(np.array([1.0]), np.array([1.0]), np.array([-0.5]), np.array([0.5]))).all()


def homogeneous_base() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 customers who all buy at nearly one rate, in days: the fit presses α against e^20."""
    bg = SimpleNamespace(r=5e4, alpha=5e5, a=0.8, b=2.5)
    gg = SimpleNamespace(p=6.0, q=4.0, v=15.0)
    ids, days, amounts = simulate_transactions(
        bg, gg, 40, np.random.default_rng(3), start=date(2025, 1, 1), days=365, acquisition_days=90
    )
    return ids, days, amounts


def test_a_fit_stuck_at_the_parameter_bound_is_refused() -> None:
    ids, days, amounts = homogeneous_base()
    s = summarize(ids, days, amounts, calibration_end=date(2025, 12, 31), time_unit="day")

    with pytest.raises(ValueError, match=r"edge of the allowed parameter range \(alpha = 4\.85"):
        fit_bgnbd(s.frequency, s.recency, s.T)


def test_a_model_at_the_bound_still_predicts_finite_non_zero_purchases() -> None:
    # what the refused fit would have been (r ≈ e^15.6, α = e^20): predictions must not collapse to 0
    m = BgNbd(r=math.exp(15.63), alpha=math.exp(20.0), a=6.13, b=26.9, log_likelihood=0.0)
    got = expected_purchases(
        m, 365, np.array([0, 5, 8]), np.array([0.0, 200.0, 300.0]), np.array([100.0, 300.0, 330.0])
    )
    assert np.isfinite(got).all() and (got > 0.5).all()
