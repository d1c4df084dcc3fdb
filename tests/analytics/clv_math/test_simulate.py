"""The simulator: reproducible, consistent shapes, orders inside the window."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np

from siyu.analytics.clv.simulate import simulate_bgnbd, simulate_transactions
from siyu.analytics.clv.summary import summarize

BG = SimpleNamespace(r=0.25, alpha=4.0, a=0.8, b=2.5)
GG = SimpleNamespace(p=6.0, q=4.0, v=15.0)


def test_simulate_bgnbd_is_reproducible_and_consistent() -> None:
    first = simulate_bgnbd(BG, GG, 1_000, 52.0, np.random.default_rng(5))
    again = simulate_bgnbd(BG, GG, 1_000, 52.0, np.random.default_rng(5))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    frequency, recency, T, monetary = first
    assert (recency <= T).all() and (recency[frequency == 0] == 0).all() and (recency[frequency > 0] > 0).all()
    assert (monetary[frequency == 0] == 0).all() and (monetary[frequency > 0] > 0).all()
    assert (T == 52.0).all() and (frequency == np.floor(frequency)).all()


def test_simulate_transactions_stay_in_the_window_and_summarize_back() -> None:
    ids, days, amounts = simulate_transactions(
        BG, GG, 500, np.random.default_rng(9), start=date(2026, 1, 1), days=100, time_unit="day", acquisition_days=10
    )
    assert days.dtype == np.dtype("datetime64[D]")
    assert days.min() >= np.datetime64("2026-01-01") and days.max() <= np.datetime64("2026-04-10")
    assert set(np.unique(ids).tolist()) == set(range(1, 501))  # everyone buys at least once
    assert (amounts > 0).all()
    # first purchases fall in the first 10 days, so every customer is in a summary at day 10
    s = summarize(ids, days, amounts, calibration_end=date(2026, 4, 10), time_unit="day")
    assert len(s) == 500 and (s.T >= 90).all()
