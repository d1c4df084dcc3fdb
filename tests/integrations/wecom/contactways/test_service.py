"""Live codes pushed to WeCom as contact ways / join ways: create, idempotent re-push, arms, caps,
deactivation, deletion, errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.contactways.service import NO_USERS, NO_USERS_NEW, sync_workspace, way_for_scan
from siyu.integrations.wecom.contactways.tasks import PUSH_KIND, push_workspace
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.livecodes.routing import take_capacity
from siyu.livecodes.schemas import LiveCodeIn
from siyu.livecodes.service import update_live_code
from siyu.livecodes.state import encode_state
from siyu.models import Job, LiveCode, LiveCodeRoute, Staff, WecomContactWay, WecomIntegration, WecomSyncRun
from tests.factories import make_customer, make_experiment, make_group, make_live_code, make_relationship, make_staff
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace

ADD = "externalcontact/add_contact_way"
UPDATE = "externalcontact/update_contact_way"
DELETE = "externalcontact/del_contact_way"


def _ways(db: Session, code_id: int) -> list[WecomContactWay]:
    return list(
        db.scalars(
            select(WecomContactWay)
            .where(WecomContactWay.live_code_id == code_id, WecomContactWay.deleted_at.is_(None))
            .order_by(WecomContactWay.id)
        )
    )


def _two_staff_code(db: Session, clock: FrozenClock, setup: WecomSetup, **settings: Any) -> LiveCode:
    anna = wecom_staff(db, setup, clock=clock, userid="anna", name="安娜")
    bo = wecom_staff(db, setup, clock=clock, userid="bo", name="博")
    return make_live_code(
        db,
        workspace=setup.workspace,
        clock=clock,
        routes=[{"staff_id": anna.id, "daily_cap": 1}, {"staff_id": bo.id}],
        **settings,
    )


def test_a_staff_code_gets_a_single_way_per_route_and_a_pool(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    code = _two_staff_code(db, clock, setup, name="春季活码")
    run = sync_workspace(db, setup.config, clock)
    assert run.counts == {"created": 3, "updated": 0, "deleted": 0, "unchanged": 0, "errors": 0}
    state = encode_state(code.id)
    ways = _ways(db, code.id)
    assert [(w.route_id is None, w.kind, w.state, w.pushed) for w in ways] == [
        (False, "contact", state, {"type": 1, "user": ["anna"], "state": state}),
        (False, "contact", state, {"type": 1, "user": ["bo"], "state": state}),
        (True, "contact", state, {"type": 2, "user": ["anna", "bo"], "state": state}),
    ]
    remote = setup.corp.table("contact_ways")
    assert {w.config_id: (remote[w.config_id]["user"], remote[w.config_id]["skip_verify"]) for w in ways} == {
        ways[0].config_id: (["anna"], True),
        ways[1].config_id: (["bo"], True),
        ways[2].config_id: (["anna", "bo"], True),
    }
    routes = db.scalars(select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id).order_by(LiveCodeRoute.id))
    assert [r.contact_qr_url for r in routes] == [ways[0].qr_code, ways[1].qr_code]
    assert ways[0].qr_code == f"https://wework.qpic.cn/wwpic/fake-{ways[0].config_id}/0"


def test_a_second_push_calls_nothing(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    _two_staff_code(db, clock, setup)
    sync_workspace(db, setup.config, clock)
    run = sync_workspace(db, setup.config, clock)
    assert run.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 3, "errors": 0}
    assert (setup.corp.calls_of(ADD), setup.corp.calls_of(UPDATE), setup.corp.calls_of(DELETE)) == (3, 0, 0)


def test_a_capped_route_leaves_the_pool_until_its_day_has_room(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    code = _two_staff_code(db, clock, setup)
    sync_workspace(db, setup.config, clock)
    anna_route = db.scalars(
        select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id).order_by(LiveCodeRoute.id)
    ).first()
    assert anna_route is not None
    assert take_capacity(
        db, anna_route, clock.now().date()
    )  # her one add of the day (Shanghai day = UTC day at 02:00Z)
    run = sync_workspace(db, setup.config, clock)
    pool = _ways(db, code.id)[2]
    assert run.counts["updated"] == 1
    assert pool.pushed["user"] == ["bo"]
    assert setup.corp.table("contact_ways")[pool.config_id]["user"] == ["bo"]
    assert setup.corp.calls_of(UPDATE) == 1


def test_experiment_arms_get_their_own_ways_and_the_scan_picks_its_arm(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    staff = wecom_staff(db, setup, clock=clock, userid="cara")
    experiment = make_experiment(db, workspace=setup.workspace, clock=clock, variants=[("A", 1), ("B", 1)])
    code = make_live_code(
        db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": staff.id}], experiment_id=experiment.id
    )
    sync_workspace(db, setup.config, clock)
    ways = _ways(db, code.id)
    assert sorted((w.route_id is None, w.variant, w.state) for w in ways) == [
        (False, "A", encode_state(code.id, None, "A")),
        (False, "B", encode_state(code.id, None, "B")),
        (True, "A", encode_state(code.id, None, "A")),
        (True, "B", encode_state(code.id, None, "B")),
    ]
    route_id = ways[0].route_id
    b_way = next(w for w in ways if w.route_id == route_id and w.variant == "B")
    a_way = next(w for w in ways if w.route_id == route_id and w.variant == "A")
    assert way_for_scan(db, route_id, "B") is b_way
    assert db.get(LiveCodeRoute, route_id).contact_qr_url == a_way.qr_code  # type: ignore[union-attr]


def test_an_inactive_staff_loses_the_way_but_a_hand_entered_qr_stays(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    anna = wecom_staff(db, setup, clock=clock, userid="anna")
    bo = wecom_staff(db, setup, clock=clock, userid="bo")
    hand = "https://example.com/bo-qr.png"
    code = make_live_code(
        db,
        workspace=setup.workspace,
        clock=clock,
        routes=[{"staff_id": anna.id}, {"staff_id": bo.id, "contact_qr_url": hand}],
    )
    sync_workspace(db, setup.config, clock)
    routes = list(
        db.scalars(select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id).order_by(LiveCodeRoute.id))
    )
    assert routes[1].contact_qr_url == hand
    anna_way = next(w for w in _ways(db, code.id) if w.route_id == routes[0].id)
    anna.is_active = False
    db.flush()
    run = sync_workspace(db, setup.config, clock)
    assert run.counts["deleted"] == 1 and run.counts["updated"] == 1  # her way; the pool now lists bo only
    assert anna_way.deleted_at == clock.now()
    assert anna_way.config_id not in setup.corp.table("contact_ways")
    assert routes[0].contact_qr_url is None
    assert routes[1].contact_qr_url == hand


def test_deleting_a_code_deletes_its_ways(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    code = _two_staff_code(db, clock, setup)
    sync_workspace(db, setup.config, clock)
    code.deleted_at = clock.now()
    db.flush()
    run = sync_workspace(db, setup.config, clock)
    assert run.counts["deleted"] == 3
    assert setup.corp.table("contact_ways") == {}
    assert _ways(db, code.id) == []
    assert sync_workspace(db, setup.config, clock).counts == {
        "created": 0,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "errors": 0,
    }


def test_a_group_code_gets_join_ways_and_a_pool_of_groups_with_room(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    roomy = make_group(db, workspace=setup.workspace, clock=clock, limit=200, members=10)
    full = make_group(db, workspace=setup.workspace, clock=clock, limit=200, members=200)
    no_chat = make_group(db, workspace=setup.workspace, clock=clock)
    roomy.wecom_chat_id, full.wecom_chat_id = "wrROOMY", "wrFULL"
    db.flush()
    for chat_id in ("wrROOMY", "wrFULL"):
        setup.corp.table("groups")[chat_id] = {"chat_id": chat_id, "member_list": []}
    code = make_live_code(
        db,
        workspace=setup.workspace,
        clock=clock,
        kind="group",
        routes=[{"group_id": roomy.id}, {"group_id": full.id}, {"group_id": no_chat.id}],
    )
    run = sync_workspace(db, setup.config, clock)
    ways = _ways(db, code.id)
    assert [(w.kind, w.pushed["chat_id_list"]) for w in ways] == [
        ("join", ["wrROOMY"]),
        ("join", ["wrFULL"]),
        ("join", ["wrROOMY"]),
    ]
    assert ways[0].qr_code == setup.corp.table("join_ways")[ways[0].config_id]["qr_code"]
    no_chat_route = db.scalar(select(LiveCodeRoute.id).where(LiveCodeRoute.group_id == no_chat.id))
    assert run.cursor["failures"] == [
        {"live_code_id": code.id, "route_id": no_chat_route, "variant": None, "error": "group has no WeCom chat id"}
    ]


def test_wecom_errors_are_recorded_and_retried_on_the_next_push(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    staff = wecom_staff(db, setup, clock=clock, userid="dan")
    ghost = make_staff(db, workspace=setup.workspace, clock=clock, wecom_user_id="ghost")  # not in the corp
    make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": staff.id}, {"staff_id": ghost.id}])
    setup.corp.fail_next(ADD, 45033)  # busy: retryable, not the integration's error
    run = sync_workspace(db, setup.config, clock)
    failures = run.cursor["failures"]
    assert [(f["retryable"], f["error"].split(":")[0]) for f in failures] == [
        (True, ADD),
        (False, ADD),
        (False, ADD),
    ]
    assert "60111" not in failures[0]["error"] and "userid not found: ghost" in failures[1]["error"]
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == setup.workspace.id))
    assert integration is not None
    db.refresh(integration)
    assert integration.last_error is not None and "ghost" in integration.last_error
    assert run.error is not None and run.status == "done"
    ghost.wecom_user_id = None
    db.flush()
    again = sync_workspace(db, setup.config, clock)
    assert again.counts["created"] == 2  # dan's way and the pool (dan only)
    assert [f["error"] for f in again.cursor["failures"]] == ["staff has no WeCom userid"]


def test_an_update_error_stays_on_the_row(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    code = _two_staff_code(db, clock, setup)
    sync_workspace(db, setup.config, clock)
    route = db.scalars(
        select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id).order_by(LiveCodeRoute.id)
    ).first()
    assert route is not None
    route.is_active = False
    db.flush()
    setup.corp.fail_next(UPDATE, 60111)
    sync_workspace(db, setup.config, clock)
    pool = next(w for w in _ways(db, code.id) if w.route_id is None)
    assert pool.error == "externalcontact/update_contact_way: scripted failure (成员 userid 不存在)"
    assert pool.pushed["user"] == ["anna", "bo"]
    sync_workspace(db, setup.config, clock)
    assert pool.error is None and pool.pushed["user"] == ["bo"]


def test_a_route_removed_by_editing_the_code_has_its_way_deleted_on_wecom(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    code = _two_staff_code(db, clock, setup, name="春季活码")
    sync_workspace(db, setup.config, clock)
    routes = list(
        db.scalars(select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id).order_by(LiveCodeRoute.id))
    )
    anna_way = next(w for w in _ways(db, code.id) if w.route_id == routes[0].id)
    bo_staff_id = routes[1].staff_id
    data = LiveCodeIn.model_validate(
        {"name": "春季活码", "kind": "staff", "routes": [{"id": routes[1].id, "staff_id": bo_staff_id}]}
    )
    update_live_code(db, actor=Actor.system(setup.workspace.id), code_id=code.id, data=data, clock=clock)
    assert anna_way.route_id is None and anna_way.pushed == {"retired": True}  # the route row is gone
    job = db.scalar(select(Job).where(Job.kind == PUSH_KIND).order_by(Job.id.desc()))
    assert job is not None and job.args == {"live_code_id": code.id}
    setup.corp.fail_next(DELETE, 45033)
    first = sync_workspace(db, setup.config, clock, live_code_id=code.id)
    assert anna_way.config_id in setup.corp.table("contact_ways") and first.counts["errors"] == 1
    assert anna_way.error is not None and anna_way.deleted_at is None
    second = sync_workspace(db, setup.config, clock, live_code_id=code.id)
    assert anna_way.config_id not in setup.corp.table("contact_ways")
    assert second.counts["deleted"] == 1 and second.counts["errors"] == 0
    assert anna_way.deleted_at == clock.now() and second.id == first.id  # one run row per workspace
    assert sorted(w["user"][0] for w in setup.corp.table("contact_ways").values()) == ["bo", "bo"]


def test_a_pool_with_nobody_eligible_keeps_its_list_and_says_so(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    anna = wecom_staff(db, setup, clock=clock, userid="anna")
    code = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": anna.id, "daily_cap": 1}])
    sync_workspace(db, setup.config, clock)
    pool = next(w for w in _ways(db, code.id) if w.route_id is None)
    route = db.scalar(select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id))
    assert route is not None and take_capacity(db, route, clock.now().date())
    run = sync_workspace(db, setup.config, clock)
    assert pool.error == NO_USERS and pool.deleted_at is None and pool.pushed["user"] == ["anna"]
    assert run.cursor["failures"] == [{"live_code_id": code.id, "route_id": None, "variant": None, "error": NO_USERS}]
    assert run.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 2, "errors": 1}
    assert setup.corp.calls_of(UPDATE) == 0 and setup.corp.calls_of(DELETE) == 0
    # a new code whose only route is full has no pool yet: said too
    late = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": anna.id, "daily_cap": 1}])
    late_route = db.scalar(select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == late.id))
    assert late_route is not None and take_capacity(db, late_route, clock.now().date())
    run = sync_workspace(db, setup.config, clock)
    assert [w.route_id is None for w in _ways(db, late.id)] == [False]
    assert {"live_code_id": late.id, "route_id": None, "variant": None, "error": NO_USERS_NEW} in run.cursor["failures"]
    clock.advance(timedelta(days=1))  # a new day: anna has room again, the pool is as it was
    sync_workspace(db, setup.config, clock)
    assert pool.error is None


def test_pool_caps_count_todays_adds_through_the_ways(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    code = _two_staff_code(db, clock, setup)  # anna: daily cap 1
    sync_workspace(db, setup.config, clock)
    anna = db.scalar(select(Staff).where(Staff.wecom_user_id == "anna"))
    assert anna is not None
    actor = Actor.system(setup.workspace.id)
    customer = make_customer(db, actor=actor, clock=clock).customer
    yesterday = make_relationship(db, customer=customer, staff=anna, added_at=clock.now() - timedelta(days=1))
    yesterday.live_code_id = code.id
    db.flush()
    assert sync_workspace(db, setup.config, clock).counts["updated"] == 0  # yesterday's add: room today
    edge = make_relationship(
        db, customer=make_customer(db, actor=actor, clock=clock).customer, staff=anna, added_at=clock.now()
    )
    edge.live_code_id = code.id  # added through the pooled way: no landing-page scan counted it
    db.flush()
    run = sync_workspace(db, setup.config, clock)
    pool = next(w for w in _ways(db, code.id) if w.route_id is None)
    assert run.counts["updated"] == 1 and pool.pushed["user"] == ["bo"]


def test_a_way_deleted_on_wecom_is_recreated_by_the_next_update(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    code = _two_staff_code(db, clock, setup)
    sync_workspace(db, setup.config, clock)
    old_pool = next(w for w in _ways(db, code.id) if w.route_id is None)
    del setup.corp.table("contact_ways")[old_pool.config_id]  # someone deleted it in the WeCom admin
    route = db.scalars(
        select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id).order_by(LiveCodeRoute.id)
    ).first()
    assert route is not None
    route.is_active = False  # the pool must now list bo only: an update
    db.flush()
    run = sync_workspace(db, setup.config, clock)
    assert old_pool.deleted_at == clock.now() and old_pool.error is not None
    new_pool = next(w for w in _ways(db, code.id) if w.route_id is None)
    assert new_pool.id != old_pool.id and new_pool.pushed["user"] == ["bo"]
    assert setup.corp.table("contact_ways")[new_pool.config_id]["user"] == ["bo"]
    assert run.counts["errors"] == 0 and run.counts["created"] == 1
    # an update refused for another reason (the way still exists) stays an error on the row
    db.get(LiveCodeRoute, route.id).is_active = True  # type: ignore[union-attr]
    db.flush()
    setup.corp.fail_next(UPDATE, 40097)
    sync_workspace(db, setup.config, clock)
    assert new_pool.deleted_at is None and new_pool.error is not None and "40097" not in str(new_pool.error)


def test_a_join_way_whose_qr_cannot_be_read_is_kept_and_read_later(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    group = make_group(db, workspace=setup.workspace, clock=clock, members=3)
    group.wecom_chat_id = "wrQR"
    db.flush()
    setup.corp.table("groups")["wrQR"] = {"chat_id": "wrQR", "member_list": []}
    code = make_live_code(db, workspace=setup.workspace, clock=clock, kind="group", routes=[{"group_id": group.id}])
    setup.corp.fail_next("externalcontact/groupchat/get_join_way", 45033, times=2)
    run = sync_workspace(db, setup.config, clock)
    ways = _ways(db, code.id)
    assert run.counts["created"] == 2 and [w.qr_code for w in ways] == [None, None]
    assert sorted(w.config_id for w in ways) == sorted(setup.corp.table("join_ways"))
    sync_workspace(db, setup.config, clock)
    assert [w.qr_code for w in ways] == [setup.corp.table("join_ways")[w.config_id]["qr_code"] for w in ways]
    assert ways[0].qr_code is not None


def test_a_single_code_push_keeps_the_other_codes_failures(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    plain = make_staff(db, workspace=setup.workspace, clock=clock)  # no WeCom userid
    anna = wecom_staff(db, setup, clock=clock, userid="anna")
    one = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": plain.id}])
    two = make_live_code(
        db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": plain.id}, {"staff_id": anna.id}]
    )
    full = sync_workspace(db, setup.config, clock)
    assert [f["live_code_id"] for f in full.cursor["failures"]] == [one.id, one.id, two.id]  # + one's empty pool
    assert full.counts == {"created": 2, "updated": 0, "deleted": 0, "unchanged": 0, "errors": 3}
    single = sync_workspace(db, setup.config, clock, live_code_id=two.id)
    assert [f["live_code_id"] for f in single.cursor["failures"]] == [one.id, one.id, two.id]
    assert single.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 2, "errors": 3}
    assert single.cursor["by_code"][str(one.id)]["errors"] == 2


def test_failures_are_redacted(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    anna = wecom_staff(db, setup, clock=clock, userid="anna")
    code = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": anna.id}])

    def leaky(self: Any, method: str, api: str, **kwargs: Any) -> dict[str, Any]:
        raise WecomError(f"GET {api}?access_token=SEKRET failed", api=api, code=60011)

    monkeypatch.setattr(WecomClient, "call", leaky)
    run = sync_workspace(db, setup.config, clock)
    assert [f["live_code_id"] for f in run.cursor["failures"]] == [code.id, code.id]
    assert all("SEKRET" not in f["error"] and "access_token=***" in f["error"] for f in run.cursor["failures"])


def test_the_workspace_push_sweeps_ways_siyu_lost_track_of(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch, database: Database
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    anna = wecom_staff(db, setup, clock=clock, userid="anna")
    code = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": anna.id}])
    db.commit()
    client = client_for(setup.config)
    foreign = client.call("POST", ADD, data={"type": 1, "scene": 2, "user": ["anna"], "state": "poster-7"})
    elsewhere = client.call("POST", ADD, data={"type": 1, "scene": 2, "user": ["anna"], "state": encode_state(10**9)})
    real_call = WecomClient.call
    lost: list[str] = []

    def timing_out(self: WecomClient, method: str, api: str, **kwargs: Any) -> dict[str, Any]:
        answer = real_call(self, method, api, **kwargs)
        if api == ADD and not lost:  # WeCom made the way, the answer never came back
            lost.append(answer["config_id"])
            raise WecomError("WeCom did not answer in time", api=api, reason="timeout", retryable=True)
        return answer

    monkeypatch.setattr(WecomClient, "call", timing_out)
    counts = push_workspace(setup.workspace.id, clock, database=database)
    assert counts["created"] == 1 and counts["errors"] == 1  # the pool; the route's way is unknown
    assert lost[0] not in setup.corp.table("contact_ways")  # swept in the same push
    db.expire_all()
    run = db.get(WecomSyncRun, counts["run_id"])
    assert run is not None and run.cursor["sweep"] == {"found": 2, "deleted": 1}  # not the other code's
    push_workspace(setup.workspace.id, clock, database=database)
    db.expire_all()
    held = {w.config_id for w in _ways(db, code.id)}
    assert len(held) == 2
    assert set(setup.corp.table("contact_ways")) == held | {foreign["config_id"], elsewhere["config_id"]}
