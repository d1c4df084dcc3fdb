"""Personas (人设): the public face a staff member's WeCom account wears on moments (朋友圈)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.calendars.schemas import PersonaIn
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound
from siyu.models import MomentPost, Persona, Staff


def list_personas(session: Session, actor: Actor) -> Sequence[Persona]:
    actor.require(Scope.TOUCH_READ)
    return session.scalars(select(Persona).where(Persona.workspace_id == actor.workspace_id).order_by(Persona.id)).all()


def get_persona(session: Session, actor: Actor, persona_id: int, *, for_update: bool = False) -> Persona:
    actor.require(Scope.TOUCH_READ)
    query = select(Persona).where(Persona.id == persona_id, Persona.workspace_id == actor.workspace_id)
    persona = session.scalar(query.with_for_update() if for_update else query)
    if persona is None:
        raise NotFound(f"persona {persona_id} not found")
    return persona


def _url(value: str | None, field: str) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if not text.startswith(("https://", "http://")):
        raise InvalidInput("expected an http(s) URL", details={"field": field})
    return text


def _values(session: Session, actor: Actor, data: PersonaIn) -> dict[str, object]:
    name = data.name.strip()
    if not name:
        raise InvalidInput("name is required", details={"field": "name"})
    if data.staff_id is not None:
        staff = session.scalar(select(Staff).where(Staff.id == data.staff_id, Staff.workspace_id == actor.workspace_id))
        if staff is None:
            raise InvalidInput("unknown staff member", details={"field": "staff_id"})
    return {
        "name": name,
        "staff_id": data.staff_id,
        "avatar_url": _url(data.avatar_url, "avatar_url"),
        "signature": (data.signature or "").strip() or None,
        "background_url": _url(data.background_url, "background_url"),
        "tone": (data.tone or "").strip() or None,
    }


def create_persona(session: Session, *, actor: Actor, data: PersonaIn, clock: Clock) -> Persona:
    actor.require(Scope.TOUCH_WRITE)
    values = _values(session, actor, data)
    persona = Persona(workspace_id=actor.workspace_id, created_at=clock.now(), **values)
    session.add(persona)
    session.flush()
    record(session, actor, action="create", entity_type="persona", entity_id=persona.id, after=values, clock=clock)
    return persona


def update_persona(session: Session, *, actor: Actor, persona_id: int, data: PersonaIn, clock: Clock) -> Persona:
    """Replace a persona's fields (the form always sends them all)."""
    actor.require(Scope.TOUCH_WRITE)
    persona = get_persona(session, actor, persona_id, for_update=True)
    values = _values(session, actor, data)
    before = {key: getattr(persona, key) for key in values}
    for key, value in values.items():
        setattr(persona, key, value)
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="persona",
        entity_id=persona.id,
        before=before,
        after=values,
        clock=clock,
    )
    return persona


def delete_persona(session: Session, *, actor: Actor, persona_id: int, clock: Clock) -> None:
    """Remove a persona and its moments calendar (staff tasks already published stay)."""
    actor.require(Scope.TOUCH_WRITE)
    persona = get_persona(session, actor, persona_id, for_update=True)
    for post in session.scalars(select(MomentPost).where(MomentPost.persona_id == persona.id)):
        session.delete(post)
    session.flush()
    session.delete(persona)
    record(
        session,
        actor,
        action="delete",
        entity_type="persona",
        entity_id=persona_id,
        before={"name": persona.name},
        clock=clock,
    )
    session.flush()
