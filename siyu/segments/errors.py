"""Domain errors of the segments area."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class SegmentNotFound(NotFound):
    code = "segment_not_found"


class SegmentNameTaken(Conflict):
    code = "segment_name_taken"


class NotDynamic(InvalidInput):
    """The operation needs a dynamic segment (a definition), e.g. tracking or editing the definition."""

    code = "segment_not_dynamic"
