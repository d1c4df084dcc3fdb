"""A timeline of demo steps: each runs through the services with a clock frozen at its moment.

The community's stories interleave (a referee joins a group before their first order, a KOC is
approved before their referees' orders earn commission), so every step is planned as
`(when, what)` and the steps run in time order, ties in planning order."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count

from siyu.kit.clock import FrozenClock

Step = Callable[[FrozenClock], None]


@dataclass
class Timeline:
    """Steps planned at moments, run in order of time."""

    _steps: list[tuple[datetime, int, Step]] = field(default_factory=list)
    _serial: count[int] = field(default_factory=count)

    def at(self, when: datetime, step: Step) -> None:
        """Plan `step` to run with a clock frozen at `when`."""
        heapq.heappush(self._steps, (when, next(self._serial), step))

    def run(self) -> int:
        """Run every step in time order (planning order on ties); steps may plan further steps."""
        done = 0
        while self._steps:
            when, _, step = heapq.heappop(self._steps)
            step(FrozenClock(when))
            done += 1
        return done
