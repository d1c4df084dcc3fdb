"""Channel settings and cost entries: validation, audit, permissions."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.channels import service
from siyu.channels.errors import ChannelNameTaken, ChannelNotFound, CostEntryNotFound
from siyu.channels.service import ChannelFields
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import AuditEntry, Channel, ChannelCostEntry, ChannelType, CostModel, Role, Workspace
from tests.factories import actor_for, make_user, make_workspace


@pytest.fixture
def ws(db: Session, clock: FrozenClock) -> Workspace:
    return make_workspace(db, clock=clock, name="花间集")


def _create(db: Session, clock: FrozenClock, ws: Workspace, **values: Any) -> Channel:
    fields = ChannelFields(**({"name": "包裹卡·双11", "type": "package_card"} | values))
    return service.create_channel(db, actor=actor_for(ws), fields=fields, clock=clock)


def _audit(db: Session, ws: Workspace) -> list[tuple[str, str, Any, Any]]:
    rows = db.scalars(select(AuditEntry).where(AuditEntry.workspace_id == ws.id).order_by(AuditEntry.id))
    return [(a.action, a.entity_type, a.before, a.after) for a in rows]


def test_create_channel_normalises_and_audits(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    owner = make_user(db, clock=clock, workspace=ws, role=Role.OPERATOR)
    channel = _create(
        db,
        clock,
        ws,
        name="  KOL 小红书 ",
        type="kol",
        owner_user_id=owner.id,
        hook=" 免费小样 ",
        starts_on=date(2026, 11, 1),
        ends_on=date(2026, 11, 30),
        cost_model="cpa",
        cpa_fen=2_050,
        cps_basis_points=1500,  # ignored: not a CPS channel
    )
    assert (channel.name, channel.type, channel.hook, channel.cost_model) == ("KOL 小红书", "kol", "免费小样", "cpa")
    assert (channel.cpa_fen, channel.cps_basis_points, channel.is_archived) == (2_050, None, False)
    assert _audit(db, ws) == [
        (
            "create",
            "channel",
            None,
            {
                "name": "KOL 小红书",
                "type": "kol",
                "owner_user_id": owner.id,
                "hook": "免费小样",
                "starts_on": "2026-11-01",
                "ends_on": "2026-11-30",
                "cost_model": "cpa",
                "cpa_fen": 2_050,
                "cps_basis_points": None,
            },
        )
    ]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"type": "billboard"}, "type"),
        ({"cost_model": "cpm"}, "cost_model"),
        ({"hook": "h" * 201}, "hook"),
        ({"starts_on": date(2026, 12, 2), "ends_on": date(2026, 12, 1)}, "ends_on"),
        ({"cost_model": "cpa"}, "cpa_fen"),
        ({"cost_model": "cpa", "cpa_fen": 0}, "cpa_fen"),
        ({"cost_model": "cps"}, "cps_basis_points"),
        ({"cost_model": "cps", "cps_basis_points": 0}, "cps_basis_points"),
        ({"cost_model": "cps", "cps_basis_points": 10_001}, "cps_basis_points"),
        ({"owner_user_id": 999_999}, "owner_user_id"),
    ],
)
def test_bad_settings_name_the_field_and_write_nothing(
    db: Session, clock: FrozenClock, ws: Workspace, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        _create(db, clock, ws, **values)
    assert caught.value.details == {"field": field}
    assert db.scalar(select(func.count()).select_from(Channel).where(Channel.workspace_id == ws.id)) == 0
    assert _audit(db, ws) == []


def test_owner_must_be_a_member_of_this_workspace(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    stranger = make_user(db, clock=clock, workspace=make_workspace(db, clock=clock))
    with pytest.raises(InvalidInput) as caught:
        _create(db, clock, ws, owner_user_id=stranger.id)
    assert caught.value.details == {"field": "owner_user_id"}


def test_cps_share_bounds_are_inclusive(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    assert _create(db, clock, ws, name="a", cost_model="cps", cps_basis_points=1).cps_basis_points == 1
    assert _create(db, clock, ws, name="b", cost_model="cps", cps_basis_points=10_000).cps_basis_points == 10_000


def test_names_are_unique_per_workspace(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    _create(db, clock, ws, name="短信")
    with pytest.raises(ChannelNameTaken) as caught:
        _create(db, clock, ws, name=" 短信")
    assert (caught.value.status_code, caught.value.details) == (409, {"field": "name"})
    other = make_workspace(db, clock=clock)
    assert _create(db, clock, other, name="短信").workspace_id == other.id


def test_update_changes_given_fields_and_audits_the_difference(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    channel = _create(db, clock, ws, cost_model="cpa", cpa_fen=2_000)
    _create(db, clock, ws, name="门店海报")
    updated = service.update_channel(
        db,
        actor=actor_for(ws),
        channel_id=channel.id,
        changes={"cost_model": CostModel.CPS, "cps_basis_points": 1_500, "hook": "穿搭建议"},
        clock=clock,
    )
    # switching to CPS drops the CPA price
    assert (updated.cost_model, updated.cpa_fen, updated.cps_basis_points) == ("cps", None, 1_500)
    assert _audit(db, ws)[-1] == (
        "update",
        "channel",
        {"hook": None, "cost_model": "cpa", "cpa_fen": 2_000, "cps_basis_points": None},
        {"hook": "穿搭建议", "cost_model": "cps", "cpa_fen": None, "cps_basis_points": 1_500},
    )
    # an unchanged save writes no audit row; a taken name is a 409; an unknown field a 422
    before = len(_audit(db, ws))
    service.update_channel(db, actor=actor_for(ws), channel_id=channel.id, changes={"name": channel.name}, clock=clock)
    assert len(_audit(db, ws)) == before
    with pytest.raises(ChannelNameTaken):
        service.update_channel(
            db, actor=actor_for(ws), channel_id=channel.id, changes={"name": "门店海报"}, clock=clock
        )
    with pytest.raises(InvalidInput) as caught:
        service.update_channel(db, actor=actor_for(ws), channel_id=channel.id, changes={"id": 5}, clock=clock)
    assert caught.value.details == {"field": "id"}


def test_archive_and_restore(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    channel = _create(db, clock, ws)
    service.set_archived(db, actor=actor_for(ws), channel_id=channel.id, archived=True, clock=clock)
    assert service.list_channels(db, actor=actor_for(ws)) == []
    assert service.list_channels(db, actor=actor_for(ws), include_archived=True) == [channel]
    service.set_archived(db, actor=actor_for(ws), channel_id=channel.id, archived=False, clock=clock)
    assert [a[0] for a in _audit(db, ws)] == ["create", "archive", "restore"]
    with pytest.raises(ChannelNotFound):
        service.set_archived(
            db, actor=actor_for(make_workspace(db, clock=clock)), channel_id=channel.id, archived=True, clock=clock
        )


def test_cost_entries_add_list_and_delete(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    channel = _create(db, clock, ws)
    actor = actor_for(ws)
    days = [date(2026, 11, 3), date(2026, 11, 1), date(2026, 11, 3), date(2026, 11, 2)]
    entries = [
        service.add_cost_entry(
            db,
            actor=actor,
            channel_id=channel.id,
            spent_on=d,
            amount_fen=100 * n,
            exposures=n,
            note=f" 第{n}笔 ",
            clock=clock,
        )
        for n, d in enumerate(days, start=1)
    ]
    assert entries[0].note == "第1笔" and entries[0].created_by == actor.label
    first = service.cost_entries(db, actor=actor, channel_id=channel.id, limit=3)
    assert [e.id for e in first.items] == [entries[2].id, entries[0].id, entries[3].id]
    rest = service.cost_entries(db, actor=actor, channel_id=channel.id, cursor=first.next_cursor, limit=3)
    assert [e.id for e in rest.items] == [entries[1].id] and rest.next_cursor is None
    service.delete_cost_entry(db, actor=actor, channel_id=channel.id, entry_id=entries[1].id, clock=clock)
    assert _audit(db, ws)[-1] == (
        "delete",
        "channel_cost_entry",
        {"channel_id": channel.id, "spent_on": "2026-11-01", "amount_fen": 200, "exposures": 2, "note": "第2笔"},
        None,
    )
    with pytest.raises(CostEntryNotFound):
        service.delete_cost_entry(db, actor=actor, channel_id=channel.id, entry_id=entries[1].id, clock=clock)
    other = _create(db, clock, ws, name="短信")
    with pytest.raises(CostEntryNotFound):
        service.delete_cost_entry(db, actor=actor, channel_id=other.id, entry_id=entries[0].id, clock=clock)


@pytest.mark.parametrize(("amount", "exposures", "field"), [(-1, None, "amount_fen"), (0, -5, "exposures")])
def test_negative_costs_are_refused(
    db: Session, clock: FrozenClock, ws: Workspace, amount: int, exposures: int | None, field: str
) -> None:
    channel = _create(db, clock, ws)
    with pytest.raises(InvalidInput) as caught:
        service.add_cost_entry(
            db,
            actor=actor_for(ws),
            channel_id=channel.id,
            spent_on=date(2026, 11, 1),
            amount_fen=amount,
            exposures=exposures,
            clock=clock,
        )
    assert caught.value.details == {"field": field}
    assert db.scalar(select(func.count()).select_from(ChannelCostEntry)) == 0


def test_analysts_read_but_never_write(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    channel = _create(db, clock, ws)
    analyst = actor_for(ws, role=Role.ANALYST)
    assert service.list_channels(db, actor=analyst) == [channel]
    with pytest.raises(PermissionDenied):
        service.create_channel(db, actor=analyst, fields=ChannelFields(name="x", type=ChannelType.SMS), clock=clock)
    with pytest.raises(PermissionDenied):
        service.update_channel(db, actor=analyst, channel_id=channel.id, changes={"name": "y"}, clock=clock)
    with pytest.raises(PermissionDenied):
        service.add_cost_entry(
            db, actor=analyst, channel_id=channel.id, spent_on=date(2026, 11, 1), amount_fen=1, clock=clock
        )
    assert db.scalar(select(func.count()).select_from(Channel).where(Channel.workspace_id == ws.id)) == 1
    assert channel.name == "包裹卡·双11"
    with pytest.raises(PermissionDenied):
        service.list_channels(db, actor=actor_for(ws, role=Role.STAFF))
