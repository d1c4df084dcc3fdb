"""Domain errors of distribution commission (each with a stable code)."""

from __future__ import annotations

from siyu.kit.errors import Conflict, NotFound


class RuleNotFound(NotFound):
    code = "commission_rule_not_found"


class StatementNotFound(NotFound):
    code = "commission_statement_not_found"


class StatementSettled(Conflict):
    """A settled statement is frozen: it cannot be settled again or regathered."""

    code = "commission_statement_settled"
