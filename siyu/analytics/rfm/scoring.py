"""Quintile scores where equal values always get equal scores.

score = ceil(5 × rank / n), where rank is the 1-based position of the *first* of the equal values
in ascending order (1 + how many values are strictly smaller). Scores are 1–5, higher values never
score lower, and ties never straddle two scores. Recency is scored inversely (fewer days since the
last order is better), by ranking the negated days.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def quintile_scores(values: npt.ArrayLike, *, inverse: bool = False) -> npt.NDArray[np.int8]:
    """Scores 1–5 for `values` (an empty input gives an empty array)."""
    data = np.asarray(values, dtype=np.float64)
    if inverse:
        data = -data
    n = data.size
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    ranks = np.searchsorted(np.sort(data), data, side="left") + 1
    # integer ceil of 5·rank/n, exact (no float rounding at the quintile edges)
    scores = (5 * ranks + n - 1) // n
    return scores.astype(np.int8)
