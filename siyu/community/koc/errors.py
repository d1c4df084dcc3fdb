"""Errors of the KOC program and its questionnaires."""

from __future__ import annotations

from typing import Any

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class QuestionnaireNotFound(NotFound):
    code = "questionnaire_not_found"


class InvalidQuestionnaire(InvalidInput):
    code = "invalid_questionnaire"


class QuestionnaireLocked(Conflict):
    """A change that would break answers already given (a removed key, a changed type)."""

    code = "questionnaire_locked"


class QuestionnaireNotOpen(Conflict):
    code = "questionnaire_not_open"


class InvalidAnswers(InvalidInput):
    """`details = {"fields": {key: message}}`: one message per failing field."""

    code = "invalid_answers"
    templates: dict[str, tuple[str, dict[str, Any]]] = {}  # noqa: RUF012 - replaced per instance
    """Per field: the untranslated message and its parameters, for pages that translate."""


class KocNotFound(NotFound):
    code = "koc_not_found"


class InvalidDecision(Conflict):
    code = "invalid_koc_decision"
