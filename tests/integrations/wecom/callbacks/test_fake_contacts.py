"""The fake's customer-contact endpoints and sims answer WeCom's shapes and errors."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from tests.integrations.wecom.helpers import wecom_workspace


def test_sim_add_then_get_and_single_use_welcome_code(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.users["u1"] = {"userid": "u1", "name": "甲", "department": [1], "status": 1}
    body = {"corp_id": setup.corp.corp_id, "userid": "u1", "state": "s1", "name": "客户甲", "unionid": "oX"}
    added = requests.post(fake_wecom.url + "/sim/contacts/add", json=body, timeout=5).json()
    assert added["external_userid"].startswith("wm") and added["statuses"] == []
    [pushed] = setup.corp.pushed
    assert {k: pushed["fields"][k] for k in ("ChangeType", "UserID", "State", "WelcomeCode")} == {
        "ChangeType": "add_external_contact",
        "UserID": "u1",
        "State": "s1",
        "WelcomeCode": added["welcome_code"],
    }
    client = client_for(setup.config)
    info = client.call("GET", "externalcontact/get", params={"external_userid": added["external_userid"]})
    assert (info["external_contact"]["name"], info["external_contact"]["unionid"]) == ("客户甲", "oX")
    assert [(f["userid"], f["state"]) for f in info["follow_user"]] == [("u1", "s1")]
    welcome = {"welcome_code": added["welcome_code"], "text": {"content": "你好"}}
    assert client.call("POST", "externalcontact/send_welcome_msg", data=welcome)["errcode"] == 0
    with pytest.raises(WecomError) as info_error:
        client.call("POST", "externalcontact/send_welcome_msg", data=welcome)
    assert info_error.value.code == 41051
    with pytest.raises(WecomError) as invalid:
        client.call("GET", "externalcontact/get", params={"external_userid": "bogus"})
    assert invalid.value.code == 40096
    gone = requests.post(
        fake_wecom.url + "/sim/contacts/customer_deletes",
        json={"corp_id": setup.corp.corp_id, "userid": "u1", "external_userid": added["external_userid"]},
        timeout=5,
    )
    assert gone.status_code == 200 and setup.corp.pushed[-1]["fields"]["ChangeType"] == "del_follow_user"
    with pytest.raises(WecomError) as not_friend:
        client.call("GET", "externalcontact/get", params={"external_userid": added["external_userid"]})
    assert not_friend.value.code == 84061
    unknown = requests.post(fake_wecom.url + "/sim/contacts/add", json={**body, "userid": "nobody"}, timeout=5)
    assert (unknown.status_code, unknown.json()["errcode"]) == (400, 60111)
