"""BG/NBD and Gamma-Gamma: likelihoods, maximum-likelihood fits and predictions.

Pure numpy/scipy. Formulas from Fader, Hardie & Lee, "Counting Your Customers the Easy Way: An
Alternative to the Pareto/NBD Model" (Marketing Science, 2005) and "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis" (JMR, 2005), with the Gamma-Gamma spend model of the latter's
technical note. Inputs per customer: frequency x (repeat purchase days), recency t_x and age T in
time units, monetary m̄ (mean value of the repeat purchase days).

Fits maximise the summed log-likelihood over log-parameters (so every parameter stays positive)
with L-BFGS-B; BG/NBD rows with identical (x, t_x, T) are compressed into one weighted row first,
which makes a fit on a million customers a matter of seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from siyu.analytics.clv.summary import Summary

__all__ = [
    "MIN_CUSTOMERS",
    "MIN_REPEAT_CUSTOMERS",
    "BgNbd",
    "Bucket",
    "GammaGamma",
    "bgnbd_log_likelihood",
    "expected_purchases",
    "expected_purchases_new",
    "expected_spend",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "holdout_validation",
    "p_alive",
]

MIN_CUSTOMERS = 2
"""A BG/NBD fit needs at least this many customers…"""
MIN_REPEAT_CUSTOMERS = 2
"""…and at least this many with a repeat purchase (Gamma-Gamma likewise)."""

_LOG_BOUND = 20.0  # log-parameters stay within ±20 (e^20 ≈ 4.9e8): a wall against runaway fits
# A BG/NBD fit whose log-parameter ends this close to ±_LOG_BOUND is refused. Not 1e-6: L-BFGS-B
# stops a little inside a bound it is pressing against (1.7e-5 seen on a 40-customer homogeneous base).
_BOUND_TOLERANCE = 1e-3


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD: purchase rate λ ~ Gamma(r, α) per time unit; dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend model: value ~ Gamma(p, ν), ν ~ Gamma(q, v)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int  # repeat buyers the fit used


@dataclass(frozen=True)
class Bucket:
    """Holdout check for the customers with one calibration frequency: mean purchases per customer."""

    label: str
    customers: int
    predicted: float
    actual: float


def _arrays(*values: object) -> list[np.ndarray]:
    out = [np.asarray(v, dtype=np.float64) for v in values]
    shape = np.broadcast_shapes(*(a.shape for a in out))
    return [np.broadcast_to(a, shape) for a in out]


def _check_rft(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> None:
    if not (np.isfinite(frequency).all() and np.isfinite(recency).all() and np.isfinite(T).all()):
        raise ValueError("frequency, recency and T must be finite numbers")
    if (frequency < 0).any() or (frequency != np.floor(frequency)).any():
        raise ValueError("frequency must be a whole number ≥ 0")
    if (recency < 0).any() or (recency > T + 1e-9).any():
        raise ValueError("recency must lie between 0 and T")
    if ((frequency == 0) & (recency != 0)).any():
        raise ValueError("recency must be 0 when frequency is 0")


def _bgnbd_ll_rows(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Per-row log-likelihood (FHL 2005, eq. 6), in logs to stay finite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
        a3 = -(r + x) * np.log(alpha + T)
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
        return np.asarray(a1 + a2 + np.logaddexp(a3, a4))


def bgnbd_log_likelihood(
    r: float,
    alpha: float,
    a: float,
    b: float,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray | None = None,
) -> float:
    """Summed BG/NBD log-likelihood of (x, t_x, T) rows, each counted `weights` times (default 1).

    ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
           + ln[ (α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+t_x)^−(r+x) ]
    """
    x, t_x, big_t = _arrays(frequency, recency, T)
    rows = _bgnbd_ll_rows(r, alpha, a, b, x, t_x, big_t)
    if weights is None:
        return float(rows.sum())
    return float(np.dot(rows, np.asarray(weights, dtype=np.float64)))


def _compress(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Identical (x, t_x, T) rows as one row each plus a count (lexsort: faster than unique(axis=0))."""
    order = np.lexsort((T, t_x, x))
    xs, ts, bigs = x[order], t_x[order], T[order]
    new_row = np.ones(xs.shape[0], dtype=bool)
    new_row[1:] = (xs[1:] != xs[:-1]) | (ts[1:] != ts[:-1]) | (bigs[1:] != bigs[:-1])
    starts = np.flatnonzero(new_row)
    counts = np.diff(np.append(starts, xs.shape[0])).astype(np.float64)
    return xs[starts], ts[starts], bigs[starts], counts


def _maximise(
    neg_ll: Callable[[np.ndarray], float],
    start: np.ndarray,
    what: str,
    value_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
) -> tuple[np.ndarray, float]:
    """Minimise `neg_ll` over log-parameters: L-BFGS-B (analytic gradient when given), Nelder-Mead if that fails."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * start.shape[0]
    best: optimize.OptimizeResult | None = None
    for method in ("L-BFGS-B", "Nelder-Mead"):
        fun: Callable[[np.ndarray], object] = neg_ll
        jac: bool | None = None
        if method == "L-BFGS-B" and value_and_gradient is not None:
            fun, jac = value_and_gradient, True
        res = optimize.minimize(fun, start, jac=jac, method=method, bounds=bounds, options={"maxiter": 2000})
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
        if best is not None and best.success:
            break
        start = best.x if best is not None else start
    if best is None or not np.isfinite(best.fun) or not np.isfinite(best.x).all():
        raise ValueError(f"the {what} fit did not converge to finite parameters")
    return np.asarray(best.x), -float(best.fun)


def _bgnbd_objective(
    ux: np.ndarray, ut: np.ndarray, uT: np.ndarray, w: np.ndarray
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Summed log-likelihood and its gradient in (ln r, ln α, ln a, ln b) over weighted rows.

    The special functions depend on x only, and x takes few values: they are evaluated once per
    distinct x and weighted by how many customers have it, so a million rows cost a few array
    operations per evaluation.
    """
    xs, inv = np.unique(ux, return_inverse=True)
    wx = np.bincount(inv, weights=w, minlength=xs.shape[0])
    total = float(w.sum())
    repeat = ux > 0
    x_pos = xs > 0

    def evaluate(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = (float(v) for v in np.exp(log_params))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            per_x = (
                special.gammaln(r + xs)
                - special.gammaln(r)
                + special.gammaln(a + b)
                + special.gammaln(b + xs)
                - special.gammaln(b)
                - special.gammaln(a + b + xs)
            )
            b_x_1 = np.where(x_pos, b + xs - 1, 1.0)
            rx = (r + xs)[inv]
            log_at, log_atx = np.log(alpha + uT), np.log(alpha + ut)
            a3 = -rx * log_at
            a4 = np.where(repeat, (np.log(a) - np.log(b_x_1))[inv] - rx * log_atx, -np.inf)
            both = np.logaddexp(a3, a4)
            value = float(per_x @ wx) + r * np.log(alpha) * total + float(both @ w)
            w3, w4 = np.exp(a3 - both), np.exp(a4 - both)  # shares of the alive / dropped-out terms
            ab = special.digamma(a + b) - special.digamma(a + b + xs)
            d_r = float((special.digamma(r + xs) - special.digamma(r)) @ wx) + total * np.log(alpha)
            d_r -= float((w3 * log_at + w4 * log_atx) @ w)
            d_alpha = total * r / alpha - float((rx * (w3 / (alpha + uT) + w4 / (alpha + ut))) @ w)
            w4w = w4 * w
            d_a = float(ab @ wx) + float(w4w.sum()) / a
            d_b = float((ab + special.digamma(b + xs) - special.digamma(b)) @ wx) - float(w4w @ (1 / b_x_1)[inv])
            grad = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
        return value, grad

    return evaluate


def fit_bgnbd(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters.

    ValueError (with a readable reason) when the data cannot support a fit: fewer than
    `MIN_CUSTOMERS` customers, fewer than `MIN_REPEAT_CUSTOMERS` repeat buyers, everyone aged 0,
    an optimiser that cannot find finite parameters, or a fit whose parameters end at the ±e^20
    wall (the likelihood keeps rising towards infinity, e.g. a base with no heterogeneity).
    """
    x, t_x, big_t = (np.array(a, dtype=np.float64) for a in _arrays(frequency, recency, T))
    x, t_x, big_t = x.ravel(), t_x.ravel(), big_t.ravel()
    _check_rft(x, t_x, big_t)
    if x.shape[0] < MIN_CUSTOMERS:
        raise ValueError(f"need at least {MIN_CUSTOMERS} customers to fit BG/NBD, got {x.shape[0]}")
    repeaters = int((x > 0).sum())
    if repeaters < MIN_REPEAT_CUSTOMERS:
        raise ValueError(
            f"need at least {MIN_REPEAT_CUSTOMERS} customers with a repeat purchase to fit BG/NBD, got {repeaters}"
        )
    if not (big_t > 0).any():
        raise ValueError("every customer is aged 0 (T = 0): nothing to learn from")
    ux, ut, uT, w = _compress(x, t_x, big_t)
    total = float(w.sum())
    objective = _bgnbd_objective(ux, ut, uT, w)

    def neg_ll_and_gradient(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective(log_params)
        if not np.isfinite(value):
            return 1e300, np.zeros(4)
        return -value / total, np.where(np.isfinite(grad), -grad / total, 0.0)

    def neg_ll(log_params: np.ndarray) -> float:
        return neg_ll_and_gradient(log_params)[0]

    scale = max(float(np.average(uT, weights=w)), 1e-3)
    start = np.log(np.array([1.0, scale, 1.0, 1.0]))
    log_params, mean_ll = _maximise(neg_ll, start, "BG/NBD", neg_ll_and_gradient)
    log_params = _follow_poisson_ridge(neg_ll, log_params)
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    at_bound = [
        f"{name} = {value:.4g}"
        for name, value, log_value in zip(("r", "alpha", "a", "b"), (r, alpha, a, b), log_params, strict=True)
        if abs(float(log_value)) >= _LOG_BOUND - _BOUND_TOLERANCE
    ]
    if at_bound:
        raise ValueError(
            f"the BG/NBD fit ran to the edge of the allowed parameter range ({', '.join(at_bound)}, "
            f"bound e^±{_LOG_BOUND:g}): the data do not pin the model down (often too little variation "
            "between customers), so its predictions would be meaningless"
        )
    return BgNbd(r=r, alpha=alpha, a=a, b=b, log_likelihood=mean_ll * total)


def _follow_poisson_ridge(neg_ll: Callable[[np.ndarray], float], log_params: np.ndarray) -> np.ndarray:
    """Where the optimiser stopped, or the wall when the likelihood still rises towards it.

    With (almost) no heterogeneity in purchase rates the likelihood keeps rising along r, α → ∞ with
    r/α fixed (the gamma mixing collapses to one Poisson rate), but so slowly that the optimiser may
    stop anywhere on that ridge — where exactly depends on the machine's floating point. Moving r and
    α together to the ±e^20 wall and finding the likelihood no lower says the maximum lies at the
    wall, which `fit_bgnbd` then refuses, on every machine alike."""
    shift = _LOG_BOUND - float(max(log_params[0], log_params[1]))
    if shift <= _BOUND_TOLERANCE:
        return log_params
    at_wall = log_params + np.array([shift, shift, 0.0, 0.0])
    if neg_ll(at_wall) <= neg_ll(log_params) + 1e-12:
        return at_wall
    return log_params


def _log_hyp2f1_series(
    big_a: np.ndarray, big_b: np.ndarray, c: np.ndarray, z: np.ndarray, max_terms: int = 200_000
) -> np.ndarray:
    """ln ₂F₁(A, B; c; z) summed term by term in log space, for A, B, c > 0 and 0 ≤ z < 1.

    The fallback when scipy's hyp2f1 gives up (NaN/inf), which it does for large A with small z,
    e.g. r ≈ 1e5 and α ≈ 1e6 (a nearly homogeneous base): every term is positive, so summing
    logs cannot cancel or overflow. Term n+1 / term n = (A+n)(B+n) z / ((c+n)(n+1)); once that ratio
    is bounded below 1 for every later n the remaining tail is bounded by a geometric series, and
    a row stops when that bound is below e^-38 of its sum. NaN where the series does not apply or
    has not converged within `max_terms` terms.
    """
    shape = np.broadcast_shapes(np.shape(big_a), np.shape(big_b), np.shape(c), np.shape(z))
    big_a, big_b, c, z = (np.asarray(v, dtype=np.float64).ravel() for v in np.broadcast_arrays(big_a, big_b, c, z))
    out = np.full(big_a.shape, np.nan)
    ok = np.isfinite(big_a + big_b + c + z) & (big_a > 0) & (big_b > 0) & (c > 0) & (z >= 0) & (z < 1)
    idx = np.flatnonzero(ok)
    log_term = np.zeros(idx.shape[0])
    log_sum = np.zeros(idx.shape[0])
    with np.errstate(divide="ignore"):
        log_z = np.log(z[idx])
    av, bv, cv, zv = big_a[idx], big_b[idx], c[idx], z[idx]
    for n in range(max_terms):
        if idx.shape[0] == 0:
            break
        # every later ratio is ≤ z · max(1, (A+n)/(n+1)) · max(1, (B+n)/(c+n)) (each factor is monotone in n)
        bound = zv * np.maximum(1.0, (av + n) / (n + 1)) * np.maximum(1.0, (bv + n) / (cv + n))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_tail = np.where(bound < 1, log_term + np.log(bound) - np.log1p(-bound), np.inf)
        done = log_tail < log_sum - 38.0
        if done.any():
            out[idx[done]] = log_sum[done]
            keep = ~done
            idx, log_term, log_sum, log_z = idx[keep], log_term[keep], log_sum[keep], log_z[keep]
            av, bv, cv, zv = av[keep], bv[keep], cv[keep], zv[keep]
            if idx.shape[0] == 0:
                break
        log_term = log_term + np.log(av + n) + np.log(bv + n) - np.log(cv + n) - np.log(n + 1.0) + log_z
        log_sum = np.logaddexp(log_sum, log_term)
    return out.reshape(shape)


def _alive_part(r: float, alpha: float, a: float, b: float, x: np.ndarray, big_t: np.ndarray, t: float) -> np.ndarray:
    """(a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))].

    scipy's hyp2f1 first; where it is not finite the series in log space. NaN only where neither
    gives a number (never silently 0).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        big_a, big_b, c = r + x, b + x, a + b + x - 1
        z = t / (alpha + big_t + t)
        log_ratio = -big_a * np.log1p(t / (alpha + big_t))  # ln ((α+T)/(α+T+t))^(r+x)
        hyp = special.hyp2f1(big_a, big_b, c, z)
        bracket = 1 - np.exp(log_ratio) * hyp
        bad = ~np.isfinite(bracket)
        if bad.any():
            log_hyp = _log_hyp2f1_series(big_a[bad], big_b[bad], c[bad], z[bad])
            bracket = np.array(bracket, dtype=np.float64)
            bracket[bad] = -np.expm1(log_ratio[bad] + log_hyp)
        return np.asarray(c / (a - 1) * bracket)


def expected_purchases(m: BgNbd, t: float, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in the next `t` time units (FHL 2005, eq. 10).

    NaN (never 0) for a customer whose value cannot be computed, so callers can refuse it.
    """
    x, t_x, big_t = _arrays(frequency, recency, T)
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    if t <= 0:
        return np.zeros(x.shape)
    first = _alive_part(r, alpha, a, b, x, big_t, t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        odds = np.where(
            x > 0,
            a / np.where(x > 0, b + x - 1, 1.0) * np.exp((r + x) * np.log1p((big_t - t_x) / (alpha + t_x))),
            0.0,
        )
        out = first / (1 + odds)  # odds = inf (surely dropped out) gives 0, as it should
    return np.asarray(out)


def p_alive(m: BgNbd, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + 1{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))."""
    x, t_x, big_t = _arrays(frequency, recency, T)
    with np.errstate(over="ignore"):
        log_odds = np.where(
            x > 0,
            np.log(m.a)
            - np.log(np.where(x > 0, m.b + x - 1, 1.0))
            + (m.r + x) * np.log1p((big_t - t_x) / (m.alpha + t_x)),
            -np.inf,
        )
        return np.asarray(special.expit(-log_odds))


def expected_purchases_new(m: BgNbd, t: float) -> float:
    """E[X(t)] for a customer just acquired: (a+b−1)/(a−1) · [1 − (α/(α+t))^r · ₂F₁(r, b; a+b−1; t/(α+t))].

    NaN (never 0) when it cannot be computed.
    """
    if t <= 0:
        return 0.0
    zero = np.zeros(1)
    return float(_alive_part(m.r, m.alpha, m.a, m.b, zero, zero, t)[0])


def _gg_ll_rows(p: float, q: float, v: float, x: np.ndarray, mbar: np.ndarray) -> np.ndarray:
    px = p * x
    return np.asarray(
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(mbar)
        + px * np.log(x)
        - (px + q) * np.log(x * mbar + v)
    )


def gamma_gamma_log_likelihood(p: float, q: float, v: float, frequency: np.ndarray, monetary: np.ndarray) -> float:
    """Summed Gamma-Gamma log-likelihood of the repeat buyers (rows with x > 0 and m̄ > 0).

    ln f(m̄ | x) = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln v + (px−1) ln m̄ + px ln x − (px+q) ln(v + x·m̄)
    """
    x, mbar = _arrays(frequency, monetary)
    keep = (x > 0) & (mbar > 0)
    return float(_gg_ll_rows(p, q, v, x[keep], mbar[keep]).sum())


def fit_gamma_gamma(frequency: np.ndarray, monetary: np.ndarray) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from the repeat buyers (x > 0 and m̄ > 0).

    ValueError when fewer than `MIN_REPEAT_CUSTOMERS` repeat buyers, when every repeat buyer has
    the same mean spend (the likelihood has no maximum), or when the optimiser fails.
    """
    x, mbar = (np.asarray(a, dtype=np.float64).ravel() for a in _arrays(frequency, monetary))
    if not (np.isfinite(x).all() and np.isfinite(mbar).all()):
        raise ValueError("frequency and monetary must be finite numbers")
    keep = (x > 0) & (mbar > 0)
    x, mbar = x[keep], mbar[keep]
    n = int(x.shape[0])
    if n < MIN_REPEAT_CUSTOMERS:
        raise ValueError(f"need at least {MIN_REPEAT_CUSTOMERS} repeat buyers with spend to fit Gamma-Gamma, got {n}")
    if np.ptp(mbar) == 0:
        raise ValueError("every repeat buyer has the same mean spend: Gamma-Gamma cannot be fitted")
    log_m, log_x, spent = np.log(mbar), np.log(x), x * mbar

    def neg_ll_and_gradient(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = np.exp(log_params)
        px = p * x
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_total = np.log(spent + v)
            rows = (
                special.gammaln(px + q)
                - special.gammaln(px)
                - special.gammaln(q)
                + q * np.log(v)
                + (px - 1) * log_m
                + px * log_x
                - (px + q) * log_total
            )
            psi_pq = special.digamma(px + q)
            d_p = x * (psi_pq - special.digamma(px) + log_m + log_x - log_total)
            d_q = psi_pq - special.digamma(q) + np.log(v) - log_total
            d_v = q / v - (px + q) / (spent + v)
            value = -float(rows.sum()) / n
            grad = -np.array([d_p.sum() * p, d_q.sum() * q, d_v.sum() * v]) / n
        if not np.isfinite(value):
            return 1e300, np.zeros(3)
        return value, np.where(np.isfinite(grad), grad, 0.0)

    def neg_ll(log_params: np.ndarray) -> float:
        return neg_ll_and_gradient(log_params)[0]

    mean = float(np.mean(mbar))
    start = np.log(np.array([1.0, 2.0, mean]))
    log_params, mean_ll = _maximise(neg_ll, start, "Gamma-Gamma", neg_ll_and_gradient)
    p, q, v = (float(val) for val in np.exp(log_params))
    return GammaGamma(p=p, q=q, v=v, log_likelihood=mean_ll * n, customers=n)


def expected_spend(m: GammaGamma, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """E[M | x, m̄] = p(v + x·m̄)/(px + q − 1); for x = 0 the population mean p·v/(q − 1).

    With q ≤ 1 the population mean is infinite: customers with x = 0 get 0 and any non-finite value
    falls back to the observed m̄, so the result never holds NaN (callers see q in the fit).
    """
    x, mbar = _arrays(frequency, monetary)
    p, q, v = m.p, m.q, m.v
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = p * (v + x * mbar) / (p * x + q - 1)
    population = p * v / (q - 1) if q > 1 else 0.0
    out = np.where(x > 0, cond, population)
    return np.asarray(np.where(np.isfinite(out) & (out >= 0), out, np.where(x > 0, mbar, 0.0)))


def holdout_validation(m: BgNbd, s: Summary, holdout_length: float, max_bucket: int = 7) -> list[Bucket]:
    """Predicted vs actual mean holdout purchases per calibration frequency "0", "1", …, "7+".

    `holdout_length` is in the summary's time units. Buckets without customers are left out.
    """
    if s.holdout_frequency is None:
        raise ValueError("the summary has no holdout (summarize with holdout_end)")
    if holdout_length <= 0:
        raise ValueError("holdout_length must be positive")
    predicted = expected_purchases(m, holdout_length, s.frequency, s.recency, s.T)
    bucket = np.minimum(s.frequency, max_bucket).astype(np.int64)
    out: list[Bucket] = []
    for k in range(max_bucket + 1):
        mask = bucket == k
        n = int(mask.sum())
        if n == 0:
            continue
        label = f"{k}+" if k == max_bucket else str(k)
        out.append(
            Bucket(
                label=label,
                customers=n,
                predicted=float(predicted[mask].mean()),
                actual=float(s.holdout_frequency[mask].mean()),
            )
        )
    return out
