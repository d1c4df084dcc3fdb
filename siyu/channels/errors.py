"""Errors of the channels area."""

from __future__ import annotations

from siyu.kit.errors import Conflict, NotFound


class ChannelNotFound(NotFound):
    code = "channel_not_found"


class CostEntryNotFound(NotFound):
    code = "cost_entry_not_found"


class ChannelNameTaken(Conflict):
    code = "channel_name_taken"
