"""Questionnaires: the builder (fields, order, open/close) and members' answers."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.koc.errors import (
    InvalidAnswers,
    InvalidQuestionnaire,
    QuestionnaireLocked,
    QuestionnaireNotFound,
    QuestionnaireNotOpen,
)
from siyu.community.koc.schemas import FieldIn, FieldType, QuestionnaireIn
from siyu.customers.masking import shown_phone
from siyu.customers.repository import visibility_clause
from siyu.kit.clock import Clock
from siyu.kit.phone import InvalidPhone, normalize_phone
from siyu.models import Customer
from siyu.models.koc import Questionnaire, QuestionnaireResponse, QuestionnaireStatus

KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
PURPOSES = ("koc_application", "survey")
MAX_FIELDS = 50
MAX_CHOICES = 50
DEFAULT_MAX_LENGTH = {FieldType.TEXT: 200, FieldType.TEXTAREA: 2000}
LIMIT_MAX_LENGTH = 5000
CHOICE_TYPES = (FieldType.SINGLE, FieldType.MULTI)

# Answer messages (Chinese msgids; pages translate them with `_()`).
REQUIRED = "此项必填"
TOO_LONG = "最多 {n} 个字"
NOT_INTEGER = "请输入整数"
BELOW_MIN = "不能小于 {n}"
ABOVE_MAX = "不能大于 {n}"
BAD_PHONE = "手机号格式不正确"
BAD_CHOICE = "请选择列表中的选项"


def _bad(message: str, field: str) -> InvalidQuestionnaire:
    return InvalidQuestionnaire(message, details={"field": field})


def clean_fields(fields: list[FieldIn]) -> list[dict[str, Any]]:
    """Validate the builder's fields and return them as stored (display order kept)."""
    if len(fields) > MAX_FIELDS:
        raise _bad(f"at most {MAX_FIELDS} fields", "fields")
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for i, f in enumerate(fields):
        where = f"fields[{i}]"
        key = f.key.strip()
        if not KEY.match(key):
            raise _bad("key must be lowercase letters, digits or _ (max 40), starting with a letter", f"{where}.key")
        if key in seen:
            raise _bad(f"duplicate key {key}", f"{where}.key")
        seen.add(key)
        label = f.label.strip()
        if not 1 <= len(label) <= 100:
            raise _bad("label must be 1–100 characters", f"{where}.label")
        if f.type not in set(FieldType):
            raise _bad(f"type must be one of {', '.join(FieldType)}", f"{where}.type")
        kind = FieldType(f.type)
        row: dict[str, Any] = {"key": key, "label": label, "type": str(kind), "required": bool(f.required)}
        if kind in CHOICE_TYPES:
            choices = [c.strip() for c in f.choices]
            if not choices or len(choices) > MAX_CHOICES:
                raise _bad(f"a choice field needs 1–{MAX_CHOICES} choices", f"{where}.choices")
            if any(not c or len(c) > 100 for c in choices) or len(set(choices)) != len(choices):
                raise _bad("choices must be distinct, 1–100 characters each", f"{where}.choices")
            row["choices"] = choices
        if kind in DEFAULT_MAX_LENGTH:
            max_length = f.max_length if f.max_length is not None else DEFAULT_MAX_LENGTH[kind]
            if not 1 <= max_length <= LIMIT_MAX_LENGTH:
                raise _bad(f"max_length must be 1–{LIMIT_MAX_LENGTH}", f"{where}.max_length")
            row["max_length"] = max_length
        if kind is FieldType.NUMBER:
            if f.min is not None and f.max is not None and f.min > f.max:
                raise _bad("min must not be greater than max", f"{where}.min")
            row["min"], row["max"] = f.min, f.max
        out.append(row)
    return out


def _clean_head(data: QuestionnaireIn) -> tuple[str, str, str, str]:
    slug = data.slug.strip().lower()
    if not SLUG.match(slug):
        raise _bad("slug must be lowercase letters, digits or - (max 40)", "slug")
    title = data.title.strip()
    if not 1 <= len(title) <= 100:
        raise _bad("title must be 1–100 characters", "title")
    if len(data.intro) > 2000:
        raise _bad("intro must be at most 2000 characters", "intro")
    if data.purpose not in PURPOSES:
        raise _bad(f"purpose must be one of {', '.join(PURPOSES)}", "purpose")
    return slug, title, data.intro.strip(), data.purpose


def _slug_taken(session: Session, workspace_id: int, slug: str, but: int | None) -> bool:
    query = select(Questionnaire.id).where(Questionnaire.workspace_id == workspace_id, Questionnaire.slug == slug)
    if but is not None:
        query = query.where(Questionnaire.id != but)
    return session.scalar(query) is not None


def _snapshot(q: Questionnaire) -> dict[str, Any]:
    return {"slug": q.slug, "title": q.title, "status": str(q.status), "fields": [f["key"] for f in q.fields]}


def create_questionnaire(session: Session, *, actor: Actor, data: QuestionnaireIn, clock: Clock) -> Questionnaire:
    """A new questionnaire, in draft."""
    actor.require(Scope.GROWTH_WRITE)
    slug, title, intro, purpose = _clean_head(data)
    fields = clean_fields(data.fields)
    if _slug_taken(session, actor.workspace_id, slug, None):
        raise _bad(f"slug {slug} is already used", "slug")
    now = clock.now()
    q = Questionnaire(
        workspace_id=actor.workspace_id,
        slug=slug,
        title=title,
        intro=intro,
        purpose=purpose,
        fields=fields,
        status=QuestionnaireStatus.DRAFT,
        created_at=now,
        updated_at=now,
    )
    session.add(q)
    session.flush()
    record(
        session,
        actor,
        action="questionnaire.create",
        entity_type="questionnaire",
        entity_id=q.id,
        clock=clock,
        after=_snapshot(q),
    )
    return q


def response_count(session: Session, questionnaire_id: int) -> int:
    """How many members answered."""
    count = session.scalar(
        select(func.count(QuestionnaireResponse.id)).where(QuestionnaireResponse.questionnaire_id == questionnaire_id)
    )
    return int(count or 0)


def update_questionnaire(
    session: Session, *, actor: Actor, questionnaire_id: int, data: QuestionnaireIn, clock: Clock
) -> Questionnaire:
    """Replace title, intro and fields (reordering included). Once answers exist, every answered key stays
    and keeps its type (409 otherwise); new fields may be added."""
    actor.require(Scope.GROWTH_WRITE)
    q = get_questionnaire(session, workspace_id=actor.workspace_id, questionnaire_id=questionnaire_id, for_update=True)
    slug, title, intro, purpose = _clean_head(data)
    fields = clean_fields(data.fields)
    if _slug_taken(session, actor.workspace_id, slug, q.id):
        raise _bad(f"slug {slug} is already used", "slug")
    if response_count(session, q.id):
        new_types = {f["key"]: f["type"] for f in fields}
        for old in q.fields:
            if old["key"] not in new_types:
                raise QuestionnaireLocked(
                    f"field {old['key']} has answers and cannot be removed", details={"field": old["key"]}
                )
            if new_types[old["key"]] != old["type"]:
                raise QuestionnaireLocked(
                    f"field {old['key']} has answers; its type cannot change", details={"field": old["key"]}
                )
        if slug != q.slug or purpose != q.purpose:
            raise QuestionnaireLocked("slug and purpose cannot change once answers exist", details={"field": "slug"})
    before = _snapshot(q)
    q.slug, q.title, q.intro, q.purpose, q.fields = slug, title, intro, purpose, fields
    q.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="questionnaire.update",
        entity_type="questionnaire",
        entity_id=q.id,
        clock=clock,
        before=before,
        after=_snapshot(q),
    )
    return q


def set_status(
    session: Session, *, actor: Actor, questionnaire_id: int, status: QuestionnaireStatus | str, clock: Clock
) -> Questionnaire:
    """Open or close a questionnaire (a form with no field cannot open)."""
    actor.require(Scope.GROWTH_WRITE)
    if status not in set(QuestionnaireStatus) or status == QuestionnaireStatus.DRAFT:
        raise _bad("status must be open or closed", "status")
    q = get_questionnaire(session, workspace_id=actor.workspace_id, questionnaire_id=questionnaire_id, for_update=True)
    target = QuestionnaireStatus(status)
    if target is QuestionnaireStatus.OPEN and not q.fields:
        raise _bad("add at least one field before opening", "fields")
    before = str(q.status)
    q.status = target
    q.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action=f"questionnaire.{target}",
        entity_type="questionnaire",
        entity_id=q.id,
        clock=clock,
        before={"status": before},
        after={"status": str(target)},
    )
    return q


def get_questionnaire(
    session: Session, *, workspace_id: int, questionnaire_id: int, for_update: bool = False
) -> Questionnaire:
    """The workspace's questionnaire or `QuestionnaireNotFound`."""
    query = select(Questionnaire).where(
        Questionnaire.workspace_id == workspace_id, Questionnaire.id == questionnaire_id
    )
    if for_update:
        query = query.with_for_update()
    q = session.scalar(query)
    if q is None:
        raise QuestionnaireNotFound(f"questionnaire {questionnaire_id} not found")
    return q


def list_questionnaires(session: Session, *, workspace_id: int) -> list[Questionnaire]:
    """All questionnaires, newest first."""
    query = select(Questionnaire).where(Questionnaire.workspace_id == workspace_id)
    return list(session.scalars(query.order_by(Questionnaire.id.desc())))


def open_by_slug(session: Session, *, workspace_id: int, slug: str) -> Questionnaire | None:
    """The open questionnaire with this slug, if any."""
    return session.scalar(
        select(Questionnaire).where(
            Questionnaire.workspace_id == workspace_id,
            Questionnaire.slug == slug.strip().lower(),
            Questionnaire.status == QuestionnaireStatus.OPEN,
        )
    )


def open_koc_application(session: Session, *, workspace_id: int) -> Questionnaire | None:
    """The open KOC application form (the most recently changed one if several are open)."""
    return session.scalar(
        select(Questionnaire)
        .where(
            Questionnaire.workspace_id == workspace_id,
            Questionnaire.purpose == "koc_application",
            Questionnaire.status == QuestionnaireStatus.OPEN,
        )
        .order_by(Questionnaire.updated_at.desc(), Questionnaire.id.desc())
        .limit(1)
    )


def validate_answers(fields: list[dict[str, Any]], raw: dict[str, Any]) -> dict[str, Any]:
    """Check raw answers (strings; a list for multi) against the fields; return the cleaned answers or
    raise `InvalidAnswers` with one message per failing field. Unknown keys are dropped."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    templates: dict[str, tuple[str, dict[str, Any]]] = {}

    def fail(key: str, template: str, **params: Any) -> None:
        templates[key] = (template, params)
        errors[key] = template.format(**params)

    for field in fields:
        key, kind = field["key"], FieldType(field["type"])
        value = raw.get(key)
        if kind is FieldType.MULTI:
            items = value if isinstance(value, list) else ([] if value in (None, "") else [value])
            picked = list(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))
            if not picked:
                if field.get("required"):
                    fail(key, REQUIRED)
                continue
            if any(v not in field["choices"] for v in picked):
                fail(key, BAD_CHOICE)
                continue
            answers[key] = picked
            continue
        text = "" if value is None else str(value[0] if isinstance(value, list) and value else value).strip()
        if not text:
            if field.get("required"):
                fail(key, REQUIRED)
            continue
        if kind in (FieldType.TEXT, FieldType.TEXTAREA):
            limit = int(field.get("max_length") or DEFAULT_MAX_LENGTH[kind])
            if len(text) > limit:
                fail(key, TOO_LONG, n=limit)
                continue
            answers[key] = text
        elif kind is FieldType.NUMBER:
            if not re.fullmatch(r"[+-]?\d{1,15}", text):
                fail(key, NOT_INTEGER)
                continue
            number = int(text)
            if field.get("min") is not None and number < field["min"]:
                fail(key, BELOW_MIN, n=field["min"])
            elif field.get("max") is not None and number > field["max"]:
                fail(key, ABOVE_MAX, n=field["max"])
            else:
                answers[key] = number
        elif kind is FieldType.PHONE:
            try:
                answers[key] = normalize_phone(text)
            except InvalidPhone:
                fail(key, BAD_PHONE)
                continue
        else:  # single
            if text not in field["choices"]:
                fail(key, BAD_CHOICE)
                continue
            answers[key] = text
    if errors:
        exc = InvalidAnswers("some answers are not valid", details={"fields": errors})
        exc.templates = templates
        raise exc
    return answers


def find_response(session: Session, *, questionnaire_id: int, customer_id: int) -> QuestionnaireResponse | None:
    """The member's answers to this questionnaire, if they answered."""
    return session.scalar(
        select(QuestionnaireResponse).where(
            QuestionnaireResponse.questionnaire_id == questionnaire_id,
            QuestionnaireResponse.customer_id == customer_id,
        )
    )


def submit(
    session: Session, *, questionnaire: Questionnaire, customer_id: int, raw: dict[str, Any], clock: Clock
) -> tuple[QuestionnaireResponse, bool]:
    """Store the member's answers once: `(response, True)` for a new one, `(earlier, False)` when they
    already answered (a resubmit or a concurrent double submit changes nothing)."""
    if (done := find_response(session, questionnaire_id=questionnaire.id, customer_id=customer_id)) is not None:
        return done, False
    if questionnaire.status != QuestionnaireStatus.OPEN:
        raise QuestionnaireNotOpen("this questionnaire is not open")
    answers = validate_answers(list(questionnaire.fields), raw)
    response = QuestionnaireResponse(
        workspace_id=questionnaire.workspace_id,
        questionnaire_id=questionnaire.id,
        customer_id=customer_id,
        answers=answers,
        submitted_at=clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(response)
            session.flush()
    except IntegrityError:
        done = find_response(session, questionnaire_id=questionnaire.id, customer_id=customer_id)
        if done is None:
            raise
        return done, False
    return response, True


def responses_of(
    session: Session, *, workspace_id: int, customer_id: int
) -> list[tuple[Questionnaire, QuestionnaireResponse]]:
    """A customer's answers to every questionnaire, newest first (for the customer profile)."""
    rows = session.execute(
        select(Questionnaire, QuestionnaireResponse)
        .join(QuestionnaireResponse, QuestionnaireResponse.questionnaire_id == Questionnaire.id)
        .where(QuestionnaireResponse.workspace_id == workspace_id, QuestionnaireResponse.customer_id == customer_id)
        .order_by(QuestionnaireResponse.submitted_at.desc(), QuestionnaireResponse.id.desc())
    )
    return [(q, r) for q, r in rows.all()]


def shown_answers(
    questionnaire: Questionnaire | None, answers: dict[str, Any], *, whole_phone: bool
) -> list[tuple[str, str, str]]:
    """`(key, label, text)` per answered field in display order, phones masked unless `whole_phone`; answers
    to fields no longer on the form come last under their key."""
    fields = list(questionnaire.fields) if questionnaire is not None else []
    out: list[tuple[str, str, str]] = []
    known = set()
    for field in fields:
        known.add(field["key"])
        if field["key"] not in answers:
            continue
        value = answers[field["key"]]
        if field["type"] == FieldType.PHONE:
            text = shown_phone(str(value), whole=whole_phone) or ""
        elif isinstance(value, list):
            text = "、".join(str(v) for v in value)
        else:
            text = str(value)
        out.append((field["key"], field["label"], text))
    out.extend((key, key, str(value)) for key, value in answers.items() if key not in known)
    return out


def visible_responses(
    session: Session, *, actor: Actor, questionnaire_id: int, limit: int = 500
) -> list[QuestionnaireResponse]:
    """Answers to a questionnaire from customers the actor may see, newest first."""
    actor.require(Scope.GROWTH_READ)
    return list(
        session.scalars(
            select(QuestionnaireResponse)
            .join(Customer, Customer.id == QuestionnaireResponse.customer_id)
            .where(
                QuestionnaireResponse.workspace_id == actor.workspace_id,
                QuestionnaireResponse.questionnaire_id == questionnaire_id,
                visibility_clause(actor),
            )
            .order_by(QuestionnaireResponse.submitted_at.desc(), QuestionnaireResponse.id.desc())
            .limit(limit)
        )
    )
