"""Per-customer purchase summary (frequency, recency, T, monetary) for the CLV models.

Pure numpy: no database. The caller hands in one row per order (customer id, brand-local purchase
day, amount); orders of one customer on the same day count as one purchase day (amounts summed), as
BG/NBD counts repeat *purchase occasions*, not order lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

__all__ = ["TIME_UNITS", "Summary", "summarize", "unit_days"]

TIME_UNITS: dict[str, int] = {"day": 1, "week": 7}
"""Length of each supported time unit in days."""


def unit_days(time_unit: str) -> int:
    """Days in one time unit ("day" → 1, "week" → 7); ValueError on anything else."""
    try:
        return TIME_UNITS[time_unit]
    except KeyError:
        raise ValueError(f"time_unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}") from None


@dataclass(frozen=True)
class Summary:
    """One entry per customer, as parallel numpy arrays ordered by customer id."""

    customer_ids: np.ndarray  # int64
    frequency: np.ndarray  # float64: repeat purchase days (purchase days after the first one)
    recency: np.ndarray  # float64: first → last purchase day, in time units
    T: np.ndarray  # float64: first purchase day → calibration end, in time units
    monetary: np.ndarray  # float64: mean value of the repeat purchase days (0 when frequency == 0)
    holdout_frequency: np.ndarray | None  # purchase days in (calibration_end, holdout_end]

    def __len__(self) -> int:
        return int(self.customer_ids.shape[0])


def _as_days(days: np.ndarray) -> np.ndarray:
    arr = np.asarray(days)
    if arr.dtype.kind != "M":
        raise ValueError("days must be a numpy datetime64 array (brand-local purchase days)")
    if np.isnat(arr).any():
        raise ValueError("days contains a missing date (NaT)")
    return arr.astype("datetime64[D]").astype(np.int64)


def summarize(
    customer_ids: np.ndarray,
    days: np.ndarray,
    amounts: np.ndarray,
    *,
    calibration_end: date,
    time_unit: str = "week",
    holdout_end: date | None = None,
) -> Summary:
    """Fold order rows into the per-customer calibration summary (and holdout counts).

    - Rows of one customer on one day collapse into one purchase day; their amounts add up.
    - Calibration = purchase days up to and including `calibration_end`. Customers whose first
      purchase falls after it are left out. frequency = calibration purchase days − 1;
      recency = last − first calibration purchase day; T = calibration_end − first purchase day;
      both divided by the unit length (7 for "week").
    - monetary = mean amount of the repeat calibration purchase days (the first day is excluded,
      as the Gamma-Gamma model expects), 0 for customers without repeats.
    - holdout_frequency (only when `holdout_end` is given) = purchase days in
      (calibration_end, holdout_end]; rows after `holdout_end` are ignored.
    """
    unit = unit_days(time_unit)
    ids = np.asarray(customer_ids)
    amt = np.asarray(amounts)
    if ids.ndim != 1 or np.asarray(days).ndim != 1 or amt.ndim != 1:
        raise ValueError("customer_ids, days and amounts must be one-dimensional arrays")
    if not (ids.shape[0] == np.asarray(days).shape[0] == amt.shape[0]):
        raise ValueError("customer_ids, days and amounts must have the same length")
    if ids.shape[0] and ids.dtype.kind not in "iu":
        raise ValueError("customer_ids must be integers")
    ids = ids.astype(np.int64, copy=False)
    day_num = _as_days(days)
    amt = amt.astype(np.float64, copy=False)
    if not np.isfinite(amt).all():
        raise ValueError("amounts contains a missing or infinite value")
    if (amt < 0).any():
        raise ValueError("amounts must not be negative")
    cal = int(np.datetime64(calibration_end, "D").astype(np.int64))
    hold: int | None = None
    if holdout_end is not None:
        hold = int(np.datetime64(holdout_end, "D").astype(np.int64))
        if hold <= cal:
            raise ValueError("holdout_end must be after calibration_end")
    last_day = hold if hold is not None else cal
    keep = day_num <= last_day
    ids, day_num, amt = ids[keep], day_num[keep], amt[keep]

    # Collapse (customer, day) pairs: sort by customer then day, sum amounts of equal pairs.
    order = np.lexsort((day_num, ids))
    ids, day_num, amt = ids[order], day_num[order], amt[order]
    if ids.shape[0]:
        new_pair = np.empty(ids.shape[0], dtype=bool)
        new_pair[0] = True
        new_pair[1:] = (ids[1:] != ids[:-1]) | (day_num[1:] != day_num[:-1])
        starts = np.flatnonzero(new_pair)
        ids, day_num = ids[starts], day_num[starts]
        amt = np.add.reduceat(amt, starts)

    in_cal = day_num <= cal
    c_ids, c_days, c_amt = ids[in_cal], day_num[in_cal], amt[in_cal]
    cust, first_idx, n_days = np.unique(c_ids, return_index=True, return_counts=True)
    empty = np.zeros(cust.shape[0], dtype=np.float64)
    if cust.shape[0] == 0:
        return Summary(
            customer_ids=cust.astype(np.int64),
            frequency=empty,
            recency=empty.copy(),
            T=empty.copy(),
            monetary=empty.copy(),
            holdout_frequency=None if hold is None else empty.copy(),
        )
    last_idx = first_idx + n_days - 1
    first_day = c_days[first_idx]
    frequency = (n_days - 1).astype(np.float64)
    recency = (c_days[last_idx] - first_day).astype(np.float64) / unit
    T = (cal - first_day).astype(np.float64) / unit
    totals = np.add.reduceat(c_amt, first_idx)
    repeat_total = totals - c_amt[first_idx]
    monetary = np.divide(repeat_total, frequency, out=np.zeros_like(repeat_total), where=frequency > 0)

    holdout: np.ndarray | None = None
    if hold is not None:
        h_ids = ids[~in_cal]
        pos = np.searchsorted(cust, h_ids)
        pos_clipped = np.minimum(pos, cust.shape[0] - 1)
        known = cust[pos_clipped] == h_ids  # customers new in the holdout are left out
        holdout = np.bincount(pos_clipped[known], minlength=cust.shape[0]).astype(np.float64)

    return Summary(
        customer_ids=cust.astype(np.int64),
        frequency=frequency,
        recency=recency,
        T=T,
        monetary=monetary,
        holdout_frequency=holdout,
    )
