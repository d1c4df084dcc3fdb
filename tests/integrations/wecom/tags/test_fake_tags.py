"""The fake's tag APIs answer WeCom's shapes and errors."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace


def test_corp_tag_apis_and_their_errors(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="zhang")
    client = client_for(setup.config)
    made = client.call("POST", "externalcontact/add_corp_tag", data={"group_name": "等级", "tag": [{"name": "VIP"}]})
    group = made["tag_group"]
    assert group["group_name"] == "等级" and group["group_id"].startswith("et")
    [vip] = group["tag"]
    assert vip["name"] == "VIP" and vip["id"].startswith("et")
    codes = []
    for data in (
        {"group_id": group["group_id"], "tag": [{"name": "VIP"}]},
        {"group_name": "等级", "tag": [{"name": "长" * 31}]},
        {"group_id": "etNope", "tag": [{"name": "x"}]},
    ):
        with pytest.raises(WecomError) as raised:
            client.call("POST", "externalcontact/add_corp_tag", data=data)
        codes.append(raised.value.code)
    assert codes == [40071, 40072, 40068]
    setup.corp.follows["wmA|zhang"] = {"userid": "zhang", "tags": []}
    client.call(
        "POST", "externalcontact/mark_tag", data={"userid": "zhang", "external_userid": "wmA", "add_tag": [vip["id"]]}
    )
    assert [t["tag_id"] for t in setup.corp.follows["wmA|zhang"]["tags"]] == [vip["id"]]
    with pytest.raises(WecomError) as raised:
        client.call(
            "POST",
            "externalcontact/mark_tag",
            data={"userid": "zhang", "external_userid": "wmB", "add_tag": [vip["id"]]},
        )
    assert raised.value.code == 84061
    client.call("POST", "externalcontact/del_corp_tag", data={"group_id": [group["group_id"]]})
    assert client.call("POST", "externalcontact/get_corp_tag_list", data={})["tag_group"] == []
    assert setup.corp.follows["wmA|zhang"]["tags"] == []
