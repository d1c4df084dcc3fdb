"""Domain errors of the lottery."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class DrawNotFound(NotFound):
    code = "draw_not_found"


class DrawNotOpen(Conflict):
    """The draw takes no entries now (draft, drawn, cancelled, or outside its dates)."""

    code = "draw_not_open"


class EntryLimitReached(Conflict):
    code = "entry_limit_reached"


class InvalidDraw(InvalidInput):
    code = "invalid_draw"


class DrawStateConflict(Conflict):
    """The action does not fit the draw's status (editing an open draw, drawing a draft…)."""

    code = "draw_state_conflict"
