"""Errors of the experiments area."""

from __future__ import annotations

from siyu.kit.errors import Conflict, NotFound


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class ExperimentStateConflict(Conflict):
    """The change does not fit the experiment's status (e.g. editing the variants of a running test)."""

    code = "experiment_state"
