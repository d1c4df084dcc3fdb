"""Errors of the customer pool."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class InvalidIdentity(InvalidInput):
    code = "invalid_identity"


class MergeNotUndoable(Conflict):
    code = "merge_not_undoable"


class CustomerErased(Conflict):
    code = "customer_erased"
