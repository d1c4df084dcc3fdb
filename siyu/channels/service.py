"""Channels (渠道) and their cost entries: the rules, written once for the API, console and CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.channels import repository
from siyu.channels.errors import ChannelNameTaken
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.ids import MAX_ID
from siyu.kit.pagination import Page
from siyu.models import Channel, ChannelCostEntry, ChannelType, CostModel

NAME_MAX = 100
HOOK_MAX = 200
NOTE_MAX = 200
MAX_BASIS_POINTS = 10_000
EDITABLE = (
    "name",
    "type",
    "owner_user_id",
    "hook",
    "starts_on",
    "ends_on",
    "cost_model",
    "cpa_fen",
    "cps_basis_points",
)


@dataclass
class ChannelFields:
    """A channel's settings as given by a person; validated by `create_channel` / `update_channel`."""

    name: str
    type: ChannelType | str
    owner_user_id: int | None = None
    hook: str | None = None
    """The offer that makes people add (钩子)."""
    starts_on: date | None = None
    ends_on: date | None = None
    cost_model: CostModel | str = CostModel.ENTRIES
    cpa_fen: int | None = None
    """Price per add, required (> 0) for the CPA model; ignored by the others."""
    cps_basis_points: int | None = None
    """Share of attributed GMV in 1/10,000 (1–10,000), required for CPS; ignored by the others."""


def _invalid(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def _text(value: str | None, field: str, limit: int) -> str | None:
    text = (value or "").strip()
    if len(text) > limit:
        raise _invalid(f"{field} is longer than {limit} characters", field)
    return text or None


def _validated(session: Session, workspace_id: int, given: ChannelFields, channel_id: int | None) -> ChannelFields:
    """Normalised settings, or a 422/409 naming the first field that is wrong."""
    name = _text(given.name, "name", NAME_MAX)
    if name is None:
        raise _invalid("name is required", "name")
    try:
        kind = ChannelType(given.type)
    except ValueError:
        raise _invalid(f"type must be one of {', '.join(ChannelType)}", "type") from None
    try:
        model = CostModel(given.cost_model)
    except ValueError:
        raise _invalid(f"cost_model must be one of {', '.join(CostModel)}", "cost_model") from None
    if given.owner_user_id is not None and not (
        0 < given.owner_user_id <= MAX_ID and repository.is_member(session, workspace_id, given.owner_user_id)
    ):
        raise _invalid("the owner must be a member of this workspace", "owner_user_id")
    if given.starts_on and given.ends_on and given.starts_on > given.ends_on:
        raise _invalid("ends_on must be on or after starts_on", "ends_on")
    cpa_fen = cps = None
    if model == CostModel.CPA:
        if given.cpa_fen is None or not 0 < given.cpa_fen <= MAX_ID:
            raise _invalid("a CPA channel needs cpa_fen, a price per add above 0", "cpa_fen")
        cpa_fen = given.cpa_fen
    if model == CostModel.CPS:
        if given.cps_basis_points is None or not 1 <= given.cps_basis_points <= MAX_BASIS_POINTS:
            raise _invalid("a CPS channel needs cps_basis_points between 1 and 10000", "cps_basis_points")
        cps = given.cps_basis_points
    existing = repository.channel_named(session, workspace_id, name)
    if existing is not None and existing != channel_id:
        raise ChannelNameTaken(f"a channel named {name!r} exists", details={"field": "name"})
    return ChannelFields(
        name=name,
        type=kind,
        owner_user_id=given.owner_user_id,
        hook=_text(given.hook, "hook", HOOK_MAX),
        starts_on=given.starts_on,
        ends_on=given.ends_on,
        cost_model=model,
        cpa_fen=cpa_fen,
        cps_basis_points=cps,
    )


def _snapshot(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as JSON for the audit log."""
    return {
        k: (v.isoformat() if isinstance(v, date) else str(v) if isinstance(v, str) else v) for k, v in values.items()
    }


def _settings_of(channel: Channel) -> dict[str, Any]:
    return {name: getattr(channel, name) for name in EDITABLE}


def _flush_named(session: Session, name: str) -> None:
    """Flush; a concurrent insert of the same name loses on the unique index as a 409, not a 500."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ChannelNameTaken(f"a channel named {name!r} exists", details={"field": "name"}) from None


def create_channel(session: Session, *, actor: Actor, fields: ChannelFields, clock: Clock) -> Channel:
    """Create a channel; 409 when the name is taken in the workspace, 422 naming a bad field."""
    actor.require(Scope.ACQUISITION_WRITE)
    valid = _validated(session, actor.workspace_id, fields, None)
    channel = Channel(workspace_id=actor.workspace_id, created_at=clock.now(), is_archived=False, **asdict(valid))
    session.add(channel)
    _flush_named(session, valid.name)
    record(
        session,
        actor,
        action="create",
        entity_type="channel",
        entity_id=channel.id,
        after=_snapshot(_settings_of(channel)),
        clock=clock,
    )
    return channel


def update_channel(
    session: Session, *, actor: Actor, channel_id: int, changes: Mapping[str, Any], clock: Clock
) -> Channel:
    """Change some settings (`changes` holds only the fields to set); the result is validated whole."""
    actor.require(Scope.ACQUISITION_WRITE)
    channel = repository.get_channel(session, actor.workspace_id, channel_id)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise _invalid(f"{unknown[0]} cannot be changed", unknown[0])
    before = _settings_of(channel)
    valid = asdict(_validated(session, actor.workspace_id, ChannelFields(**(before | dict(changes))), channel.id))
    changed = {k: v for k, v in valid.items() if v != before[k]}
    if not changed:
        return channel
    for name, value in changed.items():
        setattr(channel, name, value)
    _flush_named(session, channel.name)
    record(
        session,
        actor,
        action="update",
        entity_type="channel",
        entity_id=channel.id,
        before=_snapshot({k: before[k] for k in changed}),
        after=_snapshot(changed),
        clock=clock,
    )
    return channel


def set_archived(session: Session, *, actor: Actor, channel_id: int, archived: bool, clock: Clock) -> Channel:
    """Archive (hide from lists and forms; history and metrics stay) or restore a channel."""
    actor.require(Scope.ACQUISITION_WRITE)
    channel = repository.get_channel(session, actor.workspace_id, channel_id)
    if channel.is_archived == archived:
        return channel
    channel.is_archived = archived
    session.flush()
    record(
        session,
        actor,
        action="archive" if archived else "restore",
        entity_type="channel",
        entity_id=channel.id,
        before={"is_archived": not archived},
        after={"is_archived": archived},
        clock=clock,
    )
    return channel


def get_channel(session: Session, *, actor: Actor, channel_id: int) -> Channel:
    """One channel of the actor's workspace (404 otherwise)."""
    actor.require(Scope.ACQUISITION_READ)
    return repository.get_channel(session, actor.workspace_id, channel_id)


def list_channels(session: Session, *, actor: Actor, include_archived: bool = False) -> Sequence[Channel]:
    """The workspace's channels by name."""
    actor.require(Scope.ACQUISITION_READ)
    return repository.list_channels(session, actor.workspace_id, include_archived=include_archived)


def add_cost_entry(
    session: Session,
    *,
    actor: Actor,
    channel_id: int,
    spent_on: date,
    amount_fen: int,
    clock: Clock,
    exposures: int | None = None,
    note: str | None = None,
) -> ChannelCostEntry:
    """Record money spent on (and exposures bought from) a channel on one brand-local day."""
    actor.require(Scope.ACQUISITION_WRITE)
    channel = repository.get_channel(session, actor.workspace_id, channel_id)
    if not 0 <= amount_fen <= MAX_ID:
        raise _invalid("amount_fen must be 0 or more", "amount_fen")
    if exposures is not None and not 0 <= exposures <= MAX_ID:
        raise _invalid("exposures must be 0 or more", "exposures")
    entry = ChannelCostEntry(
        workspace_id=actor.workspace_id,
        channel_id=channel.id,
        spent_on=spent_on,
        amount_fen=amount_fen,
        exposures=exposures,
        note=_text(note, "note", NOTE_MAX),
        created_by=actor.label,
        created_at=clock.now(),
    )
    session.add(entry)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="channel_cost_entry",
        entity_id=entry.id,
        after=_entry_snapshot(entry),
        clock=clock,
    )
    return entry


def _entry_snapshot(entry: ChannelCostEntry) -> dict[str, Any]:
    return {
        "channel_id": entry.channel_id,
        "spent_on": entry.spent_on.isoformat(),
        "amount_fen": entry.amount_fen,
        "exposures": entry.exposures,
        "note": entry.note,
    }


def delete_cost_entry(session: Session, *, actor: Actor, channel_id: int, entry_id: int, clock: Clock) -> None:
    """Remove a cost entry typed by mistake (the audit log keeps what it said)."""
    actor.require(Scope.ACQUISITION_WRITE)
    entry = repository.get_cost_entry(session, actor.workspace_id, channel_id, entry_id)
    before = _entry_snapshot(entry)
    session.delete(entry)
    session.flush()
    record(
        session,
        actor,
        action="delete",
        entity_type="channel_cost_entry",
        entity_id=entry_id,
        before=before,
        clock=clock,
    )


def cost_entries(
    session: Session, *, actor: Actor, channel_id: int, cursor: str | None = None, limit: int = 100
) -> Page[ChannelCostEntry]:
    """A channel's cost entries, latest day first."""
    actor.require(Scope.ACQUISITION_READ)
    repository.get_channel(session, actor.workspace_id, channel_id)
    return repository.list_cost_entries(session, actor.workspace_id, channel_id, cursor=cursor, limit=limit)
