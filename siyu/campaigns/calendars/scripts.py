"""The script library (话术库): what staff say at each stage, with the same variables as messages.

SOP steps and staff tasks refer to scripts by id (`StaffTask.script_id`). A script's body is a
sandboxed template checked like message content: an unknown variable is refused when saved, and
a preview renders it for one customer so the operator sees exactly what staff will send.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.calendars.schemas import ScriptIn, ScriptPatch
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound
from siyu.messaging import content
from siyu.models import ContentItem, ContentKind, Customer, Script, Staff, Workspace

STAGES = ("greeting", "follow_up", "objection", "after_sale")
"""The stages every brand has; a brand may add its own (lower-case letters, digits, _)."""
_CUSTOM_STAGE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
PREVIEW_CONTEXT = {"link": "https://example.com/s/preview", "coupon_code": "PREVIEW-COUPON", "unsubscribe_url": ""}
"""Values of send-time variables in a preview (the real send fills them)."""
MAX_TAGS = 20


def _stage(value: str) -> str:
    stage = value.strip().lower()
    if not _CUSTOM_STAGE.match(stage):
        raise InvalidInput(
            "stage is greeting, follow_up, objection, after_sale, or your own (a-z, 0-9, _)",
            details={"field": "stage"},
        )
    return stage


def _title(value: str) -> str:
    title = value.strip()
    if not title:
        raise InvalidInput("title is required", details={"field": "title"})
    return title


def check_body(body: str) -> set[str]:
    """The variables a script uses; bad syntax, an unknown variable or a template that cannot render
    (with sample values) is a 422 naming `body`."""
    if not body.strip():
        raise InvalidInput("the script is empty", details={"field": "body"})
    try:
        found = content.variables_in(body)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, details={**exc.details, "field": "body"}) from exc
    unknown = sorted(found - content.known_variables())
    if unknown:
        raise InvalidInput(
            f"unknown variable {unknown[0]!r} (known: {', '.join(sorted(content.known_variables()))})",
            details={"field": "body", "variable": unknown[0]},
        )
    try:  # a template that fails for any recipient (`{{ 1/0 }}`) is refused now, not at preview
        render_text(body, {**content.SAMPLE_VALUES, **PREVIEW_CONTEXT})
    except content.RenderError as exc:
        raise InvalidInput(f"the script cannot be rendered: {exc}", details={"field": "body"}) from exc
    return found


def _tags(values: Sequence[str]) -> list[str]:
    tags = list(dict.fromkeys(t.strip() for t in values if t.strip()))
    if len(tags) > MAX_TAGS or any(len(t) > 30 for t in tags):
        raise InvalidInput(f"at most {MAX_TAGS} tags of up to 30 characters", details={"field": "tags"})
    return tags


def list_scripts(
    session: Session, actor: Actor, *, stage: str | None = None, q: str | None = None, tag: str | None = None
) -> list[Script]:
    """Scripts ordered by stage then title; `q` searches titles and bodies, `tag` matches a tag exactly."""
    actor.require(Scope.TOUCH_READ)
    query = select(Script).where(Script.workspace_id == actor.workspace_id)
    if stage:
        query = query.where(Script.stage == stage)
    if q and q.strip():
        needle = q.strip()
        query = query.where(
            or_(Script.title.contains(needle, autoescape=True), Script.body.contains(needle, autoescape=True))
        )
    scripts = list(session.scalars(query.order_by(Script.stage, Script.title, Script.id).limit(1000)))
    if tag:
        scripts = [s for s in scripts if tag in (s.tags or [])]
    return scripts


def grouped_by_stage(scripts: Sequence[Script]) -> list[tuple[str, list[Script]]]:
    """Scripts by stage: the four standard stages first (even when empty), then a brand's own."""
    groups: dict[str, list[Script]] = {stage: [] for stage in STAGES}
    for script in scripts:
        groups.setdefault(script.stage, []).append(script)
    return list(groups.items())


def get_script(session: Session, actor: Actor, script_id: int, *, for_update: bool = False) -> Script:
    actor.require(Scope.TOUCH_READ)
    query = select(Script).where(Script.id == script_id, Script.workspace_id == actor.workspace_id)
    script = session.scalar(query.with_for_update() if for_update else query)
    if script is None:
        raise NotFound(f"script {script_id} not found")
    return script


def create_script(session: Session, *, actor: Actor, data: ScriptIn, clock: Clock) -> Script:
    actor.require(Scope.TOUCH_WRITE)
    values: dict[str, Any] = {
        "stage": _stage(data.stage),
        "title": _title(data.title),
        "body": data.body,
        "tags": _tags(data.tags),
    }
    check_body(data.body)
    now = clock.now()
    script = Script(workspace_id=actor.workspace_id, created_at=now, updated_at=now, **values)
    session.add(script)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="script",
        entity_id=script.id,
        after={"stage": values["stage"], "title": values["title"]},
        clock=clock,
    )
    return script


def update_script(session: Session, *, actor: Actor, script_id: int, data: ScriptPatch, clock: Clock) -> Script:
    actor.require(Scope.TOUCH_WRITE)
    script = get_script(session, actor, script_id, for_update=True)
    before = {"stage": script.stage, "title": script.title, "body": script.body}
    if data.stage is not None:
        script.stage = _stage(data.stage)
    if data.title is not None:
        script.title = _title(data.title)
    if data.body is not None:
        check_body(data.body)
        script.body = data.body
    if data.tags is not None:
        script.tags = _tags(data.tags)
    script.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="script",
        entity_id=script.id,
        before=before,
        after={"stage": script.stage, "title": script.title, "body": script.body},
        clock=clock,
    )
    return script


def delete_script(session: Session, *, actor: Actor, script_id: int, clock: Clock) -> None:
    """Remove a script (tasks that suggested it keep their own copy of the text)."""
    actor.require(Scope.TOUCH_WRITE)
    script = get_script(session, actor, script_id, for_update=True)
    session.delete(script)
    record(
        session,
        actor,
        action="delete",
        entity_type="script",
        entity_id=script_id,
        before={"title": script.title},
        clock=clock,
    )
    session.flush()


def render_text(body: str, variables: dict[str, Any]) -> str:
    """A script body rendered with `variables`; any template failure (a missing variable, `{{ 1/0 }}`…)
    raises `content.RenderError`."""
    message = content.render(ContentItem(kind=ContentKind.TEXT, body=body), variables)
    return str(message.get("text", ""))


def preview_script(session: Session, *, actor: Actor, script_id: int, customer_id: int) -> tuple[str, list[str]]:
    """The script as staff would send it to one customer; a variable without a value is a 422."""
    script = get_script(session, actor, script_id)
    actor.require(Scope.CUSTOMERS_READ)
    customer = session.scalar(
        select(Customer).where(Customer.id == customer_id, Customer.workspace_id == actor.workspace_id)
    )
    if customer is None:
        raise InvalidInput("unknown customer", details={"field": "customer_id"})
    names = check_body(script.body)
    values: dict[str, Any] = dict(PREVIEW_CONTEXT)
    values["brand"] = session.scalar(select(Workspace.name).where(Workspace.id == actor.workspace_id)) or ""
    staff = session.get(Staff, customer.owner_staff_id) if customer.owner_staff_id else None
    if staff is not None:
        values["staff_name"] = staff.name
    values.update(content.load_variables(session, actor.workspace_id, [customer], names)[customer.id])
    try:
        return render_text(script.body, values), sorted(names)
    except content.RenderError as exc:
        raise InvalidInput(f"cannot render for this customer: {exc}", details={"field": "body"}) from exc
