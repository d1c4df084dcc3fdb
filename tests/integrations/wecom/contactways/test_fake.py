"""The fake's contact-way and join-way APIs follow WeCom's limits; the scan / join sims route to H1's
and H2's simulate functions with the way's state."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import requests
from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from tests.integrations.wecom.helpers import wecom_workspace


def _setup(db: Session, clock: FrozenClock, fake_wecom: RunningFake, chats: tuple[str, ...] = ()) -> Any:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    for userid in ("u1", "u2"):
        setup.corp.users[userid] = {"userid": userid, "name": userid, "department": [1], "status": 1}
    for chat_id in chats:
        setup.corp.table("groups")[chat_id] = {"chat_id": chat_id, "member_list": []}
    return setup


def _code(call: Any) -> int | None:
    with pytest.raises(WecomError) as caught:
        call()
    return caught.value.code


def test_contact_way_limits(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = _setup(db, clock, fake_wecom)
    client = client_for(setup.config)
    api = "externalcontact/add_contact_way"
    base = {"type": 1, "scene": 2, "user": ["u1"]}
    assert _code(lambda: client.call("POST", api, data=base | {"state": "x" * 31})) == 40097
    assert _code(lambda: client.call("POST", api, data=base | {"user": ["nobody"]})) == 60111
    assert _code(lambda: client.call("POST", api, data=base | {"user": ["u1", "u2"]})) == 40097
    made = client.call("POST", api, data=base | {"state": "x" * 30, "remark": "r"})
    got = client.call("POST", "externalcontact/get_contact_way", data={"config_id": made["config_id"]})
    assert got["contact_way"]["state"] == "x" * 30 and got["contact_way"]["qr_code"] == made["qr_code"]
    client.call("POST", "externalcontact/update_contact_way", data={"config_id": made["config_id"], "user": ["u2"]})
    assert setup.corp.table("contact_ways")[made["config_id"]]["user"] == ["u2"]
    second = client.call("POST", api, data={"type": 2, "scene": 2, "user": ["u1", "u2"]})
    page = client.call("POST", "externalcontact/list_contact_way", data={"limit": 1})
    rest = client.call("POST", "externalcontact/list_contact_way", data={"limit": 1, "cursor": page["next_cursor"]})
    assert [w["config_id"] for w in page["contact_way"] + rest["contact_way"]] == sorted(
        [made["config_id"], second["config_id"]]
    )
    assert rest["next_cursor"] == ""
    client.call("POST", "externalcontact/del_contact_way", data={"config_id": made["config_id"]})
    assert (
        _code(lambda: client.call("POST", "externalcontact/get_contact_way", data={"config_id": made["config_id"]}))
        == 40097
    )


def test_join_way_limits(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    chats = [f"wr{i}" for i in range(6)]
    setup = _setup(db, clock, fake_wecom, chats=(*chats, "wr9"))
    client = client_for(setup.config)
    api = "externalcontact/groupchat/add_join_way"
    assert _code(lambda: client.call("POST", api, data={"scene": 2, "chat_id_list": chats})) == 40097
    assert (
        _code(lambda: client.call("POST", api, data={"scene": 2, "chat_id_list": ["wr1"], "state": "s" * 31})) == 40097
    )
    made = client.call("POST", api, data={"scene": 2, "chat_id_list": chats[:5], "state": "s1-", "remark": "r"})
    way = client.call("POST", "externalcontact/groupchat/get_join_way", data={"config_id": made["config_id"]})[
        "join_way"
    ]
    assert (way["chat_id_list"], way["state"]) == (chats[:5], "s1-")
    assert way["qr_code"].startswith("https://wework.qpic.cn/wwpic/fake-jw")
    client.call(
        "POST",
        "externalcontact/groupchat/update_join_way",
        data={"config_id": made["config_id"], "scene": 2, "chat_id_list": ["wr9"]},
    )
    updated = setup.corp.table("join_ways")[made["config_id"]]
    # WeCom overwrites the whole way: state and remark not sent are cleared
    assert (updated["chat_id_list"], updated["state"], updated["remark"]) == (["wr9"], "", "")
    client.call("POST", "externalcontact/groupchat/del_join_way", data={"config_id": made["config_id"]})
    assert setup.corp.table("join_ways") == {}


def test_scan_sim_round_robins_users_with_the_way_state(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = _setup(db, clock, fake_wecom)
    calls: list[dict[str, Any]] = []

    def simulate_add(fake: Any, corp_id: str, **kwargs: Any) -> dict[str, Any]:
        calls.append({"corp_id": corp_id} | kwargs)
        return {"external_userid": f"wm{len(calls)}", "welcome_code": "wc"}

    monkeypatch.setitem(
        sys.modules, "siyu.integrations.wecom.fake.contacts", types.SimpleNamespace(simulate_add=simulate_add)
    )
    made = client_for(setup.config).call(
        "POST", "externalcontact/add_contact_way", data={"type": 2, "scene": 2, "user": ["u1", "u2"], "state": "s9--"}
    )
    answers = [
        requests.post(
            f"{fake_wecom.url}/sim/contactways/scan", json={"config_id": made["config_id"], "name": n}, timeout=5
        ).json()
        for n in ("甲", "乙", "丙")
    ]
    assert [a["userid"] for a in answers] == ["u1", "u2", "u1"]
    assert [(c["corp_id"], c["userid"], c["state"], c["name"]) for c in calls] == [
        (setup.corp.corp_id, "u1", "s9--", "甲"),
        (setup.corp.corp_id, "u2", "s9--", "乙"),
        (setup.corp.corp_id, "u1", "s9--", "丙"),
    ]
    unknown = requests.post(f"{fake_wecom.url}/sim/contactways/scan", json={"config_id": "nope"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["errcode"] == 40097


def test_join_sim_joins_the_first_chat_with_the_way_state(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = _setup(db, clock, fake_wecom, chats=("wrA", "wrB"))
    calls: list[dict[str, Any]] = []

    def simulate_join(fake: Any, corp_id: str, **kwargs: Any) -> dict[str, Any]:
        calls.append({"corp_id": corp_id} | kwargs)
        return {"chat_id": kwargs["chat_id"]}

    monkeypatch.setitem(
        sys.modules, "siyu.integrations.wecom.fake.groups", types.SimpleNamespace(simulate_join=simulate_join)
    )
    made = client_for(setup.config).call(
        "POST",
        "externalcontact/groupchat/add_join_way",
        data={"scene": 2, "chat_id_list": ["wrA", "wrB"], "state": "s2--"},
    )
    answer = requests.post(
        f"{fake_wecom.url}/sim/contactways/join",
        json={"config_id": made["config_id"], "name": "丁", "external_userid": "wmJOIN"},
        timeout=5,
    ).json()
    assert answer == {"chat_id": "wrA", "external_userid": "wmJOIN", "state": "s2--"}
    assert calls == [
        {
            "corp_id": setup.corp.corp_id,
            "chat_id": "wrA",
            "external_userid": "wmJOIN",
            "name": "丁",
            "join_scene": 3,
            "state": "s2--",
        }
    ]


def test_join_ways_refuse_chats_the_corp_does_not_have(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    bare = _setup(db, clock, fake_wecom)  # a corp without any chat still checks them
    api = "externalcontact/groupchat/add_join_way"
    assert _code(lambda: client_for(bare.config).call("POST", api, data={"scene": 2, "chat_id_list": ["wrX"]})) == 40050
    setup = _setup(db, clock, fake_wecom, chats=("wrREAL",))
    client = client_for(setup.config)
    assert _code(lambda: client.call("POST", api, data={"scene": 2, "chat_id_list": ["wrREAL", "wrNOPE"]})) == 40050
    assert client.call("POST", api, data={"scene": 2, "chat_id_list": ["wrREAL"]})["config_id"].startswith("jw")


def test_multi_person_ways_take_departments_and_the_corp_quota(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    client = client_for(setup.config)
    api = "externalcontact/add_contact_way"
    assert _code(lambda: client.call("POST", api, data={"type": 1, "scene": 2, "party": [2]})) == 41035
    made = client.call("POST", api, data={"type": 2, "scene": 2, "party": [2]})
    way = setup.corp.table("contact_ways")[made["config_id"]]
    assert (way["user"], way["party"], way["created_at"]) == ([], [2], int(clock.now().timestamp()))
    setup.corp.limits["contact_ways"] = 1
    assert _code(lambda: client.call("POST", api, data={"type": 1, "scene": 2, "user": ["u1"]})) == 40097


def test_list_contact_way_defaults_to_the_last_90_days(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    client = client_for(setup.config)
    api = "externalcontact/add_contact_way"
    now = clock.now().timestamp()
    setup.corp.clock = lambda: now - 91 * 86400
    old = client.call("POST", api, data={"type": 1, "scene": 2, "user": ["u1"]})["config_id"]
    setup.corp.clock = lambda: now
    new = client.call("POST", api, data={"type": 1, "scene": 2, "user": ["u1"]})["config_id"]
    listed = client.call("POST", "externalcontact/list_contact_way", data={})
    assert [w["config_id"] for w in listed["contact_way"]] == [new]
    window = {"start_time": int(now) - 92 * 86400, "end_time": int(now) - 90 * 86400}
    assert [
        w["config_id"] for w in client.call("POST", "externalcontact/list_contact_way", data=window)["contact_way"]
    ] == [old]
