"""summarize(): order rows → frequency, recency, T, monetary and holdout counts, worked by hand."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from siyu.analytics.clv.summary import summarize


def _orders(rows: list[tuple[int, str, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    days = np.array([r[1] for r in rows], dtype="datetime64[D]")
    amounts = np.array([r[2] for r in rows], dtype=np.float64)
    return ids, days, amounts


ROWS = [
    # customer 1: two orders on 01-01 (one purchase day worth 15), then 01-08 (20) and 01-22 (30);
    # in the holdout two orders on 02-05 (one day) and one on 03-05 (after the holdout: ignored).
    (1, "2026-01-22", 30.0),
    (1, "2026-01-01", 10.0),
    (1, "2026-01-01", 5.0),
    (1, "2026-01-08", 20.0),
    (1, "2026-02-05", 7.0),
    (1, "2026-02-05", 8.0),
    (1, "2026-03-05", 9.0),
    # customer 2: 01-15 (40) and 01-29 = the calibration end itself (60): counts in calibration.
    (2, "2026-01-15", 40.0),
    (2, "2026-01-29", 60.0),
    # customer 3: first purchase after the calibration end: left out, even though it is in the holdout.
    (3, "2026-02-01", 50.0),
    # customer 4: one order on 01-20.
    (4, "2026-01-20", 12.0),
]


def test_weeks_with_same_day_orders_collapsed_and_holdout_counted() -> None:
    ids, days, amounts = _orders(ROWS)

    s = summarize(ids, days, amounts, calibration_end=date(2026, 1, 29), holdout_end=date(2026, 2, 28))

    # customer 1: purchase days 01-01, 01-08, 01-22 → frequency 2; recency 21 days = 3 weeks;
    #   T = 01-29 − 01-01 = 28 days = 4 weeks; monetary = mean of repeats (20 + 30)/2 = 25;
    #   holdout: 02-05 (two orders, one day) = 1, 03-05 is after the holdout end.
    # customer 2: days 01-15, 01-29 → frequency 1; recency = T = 14 days = 2 weeks; monetary 60; holdout 0.
    # customer 4: day 01-20 → frequency 0, recency 0, T = 9/7 weeks, monetary 0, holdout 0.
    assert s.customer_ids.tolist() == [1, 2, 4]
    assert s.frequency.tolist() == [2.0, 1.0, 0.0]
    assert s.recency.tolist() == [3.0, 2.0, 0.0]
    assert s.T.tolist() == pytest.approx([4.0, 2.0, 9 / 7])
    assert s.monetary.tolist() == [25.0, 60.0, 0.0]
    assert s.holdout_frequency is not None and s.holdout_frequency.tolist() == [1.0, 0.0, 0.0]
    assert len(s) == 3


def test_days_as_unit_and_no_holdout() -> None:
    ids, days, amounts = _orders(ROWS)

    s = summarize(ids, days, amounts, calibration_end=date(2026, 1, 29), time_unit="day")

    # same purchase days as above, measured in days: recency 21, 14, 0; T 28, 14, 9.
    assert s.recency.tolist() == [21.0, 14.0, 0.0]
    assert s.T.tolist() == [28.0, 14.0, 9.0]
    assert s.holdout_frequency is None


def test_no_orders_before_the_calibration_end_gives_an_empty_summary() -> None:
    ids, days, amounts = _orders([(1, "2026-03-01", 5.0)])

    s = summarize(ids, days, amounts, calibration_end=date(2026, 1, 1), holdout_end=date(2026, 6, 1))

    assert len(s) == 0 and s.frequency.shape == (0,)
    assert s.holdout_frequency is not None and s.holdout_frequency.shape == (0,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_unit": "month"}, "time_unit"),
        ({"holdout_end": date(2026, 1, 29)}, "holdout_end"),
        ({"amounts": np.array([1.0, -1.0])}, "negative"),
        ({"amounts": np.array([1.0, np.nan])}, "missing"),
        ({"amounts": np.array([1.0])}, "same length"),
        ({"days": np.array(["2026-01-01", "2026-01-02"])}, "datetime64"),
        ({"customer_ids": np.array([1.5, 2.0])}, "integers"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_problem(change: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "customer_ids": np.array([1, 2]),
        "days": np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]"),
        "amounts": np.array([1.0, 2.0]),
        "calibration_end": date(2026, 1, 29),
    }
    args.update(change)
    with pytest.raises(ValueError, match=message):
        summarize(**args)  # type: ignore[arg-type]
