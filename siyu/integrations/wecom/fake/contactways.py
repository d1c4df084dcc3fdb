"""Fake WeCom 「联系我」 contact ways and group join ways, with the sims that scan them.

APIs (shapes of the WeCom documentation, 客户联系 › 联系我与客户入群方式):
`externalcontact/add_contact_way|get_contact_way|update_contact_way|del_contact_way|list_contact_way`
and `externalcontact/groupchat/add_join_way|get_join_way|update_join_way|del_join_way`.
Limits enforced: `state` ≤ 30 characters (40097), a single-person way (type 1) has exactly one
user, a multi-person way (type 2) users and/or departments (`party`), ≤ 100 users, every user a
member of the corp (60111), at most 500,000 contact ways per corp (`corp.limits["contact_ways"]`
lowers it for tests), join ways 1-5 chats of the corp (40050 for an unknown chat).
`list_contact_way` filters by creation time (`start_time`/`end_time`, default the last 90 days).
`update_join_way` overwrites the whole way (WeCom: 覆盖更新), like WeCom.

Sims: "contactways/scan" {config_id, name?, external_userid?} (a customer scans a contact way: the
way's next user in round-robin adds them, through `fake.contacts.simulate_add`) and
"contactways/join" {config_id, name?, external_userid?} (a customer joins through a join way: the
first listed chat, through `fake.groups.simulate_join`).
"""

from __future__ import annotations

from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

WAYS = "contact_ways"
JOIN_WAYS = "join_ways"
MAX_STATE = 30
MAX_MULTI_USERS = 100
MAX_JOIN_CHATS = 5
LIST_LIMIT = 1000
MAX_WAYS = 500_000  # contact ways a corp may hold
LIST_WINDOW_S = 90 * 86400


def _check_state(state: Any) -> str:
    text = str(state or "")
    if len(text) > MAX_STATE:
        raise FakeError(40097, "invalid state: longer than 30 characters")
    return text


def _check_users(corp: FakeCorp, users: Any, way_type: int, party: Any = None) -> list[str]:
    users = users if isinstance(users, list) else []
    if not users and not (way_type == 2 and isinstance(party, list) and party):
        raise FakeError(41035, "missing user")
    if way_type == 1 and len(users) != 1:
        raise FakeError(40097, "a single-person contact way takes exactly one user")
    if len(users) > MAX_MULTI_USERS:
        raise FakeError(40097, "too many users")
    for userid in users:
        member = corp.users.get(str(userid))
        if member is None or member.get("status", 1) != 1:
            raise FakeError(60111, f"userid not found: {userid}")
    return [str(u) for u in users]


def _way(corp: FakeCorp, config_id: Any) -> dict[str, Any]:
    way = corp.table(WAYS).get(str(config_id or ""))
    if way is None:
        raise FakeError(40097, "invalid config_id")  # WeCom answers "invalid args" for an unknown id
    return way


@api("externalcontact/add_contact_way")
def add_contact_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    way_type = int(call.require("type"))
    scene = int(call.require("scene"))
    if way_type not in (1, 2) or scene not in (1, 2):
        raise FakeError(40097, "invalid type or scene")
    state = _check_state(call.arg("state"))
    users = _check_users(corp, call.arg("user"), way_type, call.arg("party"))
    if len(corp.table(WAYS)) >= corp.limits.get(WAYS, MAX_WAYS):
        raise FakeError(40097, "contact way quota of the corp reached")
    config_id = corp.next_id("cw")
    way = {
        "config_id": config_id,
        "type": way_type,
        "scene": scene,
        "style": call.arg("style", 1),
        "remark": str(call.arg("remark", ""))[:30],
        "skip_verify": bool(call.arg("skip_verify", True)),
        "state": state,
        "user": users,
        "party": list(call.arg("party") or []) if way_type == 2 else [],
        "is_temp": bool(call.arg("is_temp", False)),
        "qr_code": f"https://wework.qpic.cn/wwpic/fake-{config_id}/0" if scene == 2 else "",
        "created_at": int(corp.now()),
        "scans": 0,
    }
    corp.table(WAYS)[config_id] = way
    return {"config_id": config_id, "qr_code": way["qr_code"]}


@api("externalcontact/get_contact_way")
def get_contact_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    way = _way(corp, call.require("config_id"))
    return {"contact_way": {k: v for k, v in way.items() if k not in ("created_at", "scans")}}


@api("externalcontact/update_contact_way")
def update_contact_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    way = _way(corp, call.require("config_id"))
    changes: dict[str, Any] = {}
    if call.arg("state") is not None:
        changes["state"] = _check_state(call.arg("state"))
    if call.arg("user") is not None or call.arg("party") is not None:
        user = call.arg("user") if call.arg("user") is not None else way["user"]
        party = call.arg("party") if call.arg("party") is not None else way["party"]
        changes["user"] = _check_users(corp, user, int(way["type"]), party)
        if int(way["type"]) == 2:
            changes["party"] = list(party or [])
    for key in ("remark", "skip_verify", "style"):
        if call.arg(key) is not None:
            changes[key] = call.arg(key)
    way.update(changes)
    return {}


@api("externalcontact/del_contact_way")
def del_contact_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    _way(corp, call.require("config_id"))
    del corp.table(WAYS)[str(call.arg("config_id"))]
    return {}


@api("externalcontact/list_contact_way")
def list_contact_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    limit = int(call.arg("limit", 100) or 100)
    if limit > LIST_LIMIT:
        raise FakeError(40097, "limit exceeds 1000")
    end_time = int(call.arg("end_time") or corp.now())
    start_time = int(call.arg("start_time") or end_time - LIST_WINDOW_S)
    start = int(call.arg("cursor") or 0)
    ids = sorted(c for c, w in corp.table(WAYS).items() if start_time <= int(w["created_at"]) <= end_time)
    page = ids[start : start + limit]
    next_cursor = str(start + limit) if start + limit < len(ids) else ""
    return {"contact_way": [{"config_id": c} for c in page], "next_cursor": next_cursor}


def _check_chats(corp: FakeCorp, chats: Any) -> list[str]:
    if not isinstance(chats, list) or not chats:
        raise FakeError(41035, "missing chat_id_list")
    if len(chats) > MAX_JOIN_CHATS:
        raise FakeError(40097, "chat_id_list takes at most 5 chats")
    known = corp.table("groups")  # `fake.groups` keeps the corp's chats by chat_id
    for chat_id in chats:
        if str(chat_id) not in known:
            raise FakeError(40050, f"invalid chat_id: {chat_id}")
    return [str(c) for c in chats]


def _join_way(corp: FakeCorp, config_id: Any) -> dict[str, Any]:
    way = corp.table(JOIN_WAYS).get(str(config_id or ""))
    if way is None:
        raise FakeError(40097, "invalid config_id")
    return way


@api("externalcontact/groupchat/add_join_way")
def add_join_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    scene = int(call.require("scene"))
    if scene not in (1, 2):
        raise FakeError(40097, "invalid scene")
    state = _check_state(call.arg("state"))
    chats = _check_chats(corp, call.arg("chat_id_list"))
    config_id = corp.next_id("jw")
    corp.table(JOIN_WAYS)[config_id] = {
        "config_id": config_id,
        "scene": scene,
        "remark": str(call.arg("remark", ""))[:30],
        "auto_create_room": int(call.arg("auto_create_room", 1)),
        "room_base_name": call.arg("room_base_name", ""),
        "room_base_id": call.arg("room_base_id", 0),
        "chat_id_list": chats,
        "qr_code": f"https://wework.qpic.cn/wwpic/fake-{config_id}/0" if scene == 2 else "",
        "state": state,
    }
    return {"config_id": config_id}


@api("externalcontact/groupchat/get_join_way")
def get_join_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return {"join_way": dict(_join_way(corp, call.require("config_id")))}


@api("externalcontact/groupchat/update_join_way")
def update_join_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """WeCom overwrites the whole way: fields not sent fall back to their defaults."""
    way = _join_way(corp, call.require("config_id"))
    scene = int(call.require("scene"))
    if scene not in (1, 2):
        raise FakeError(40097, "invalid scene")
    way.update(
        {
            "scene": scene,
            "chat_id_list": _check_chats(corp, call.arg("chat_id_list")),
            "state": _check_state(call.arg("state")),
            "remark": str(call.arg("remark", "") or "")[:30],
            "auto_create_room": int(call.arg("auto_create_room", 1)),
            "room_base_name": call.arg("room_base_name", ""),
            "room_base_id": call.arg("room_base_id", 0),
        }
    )
    return {}


@api("externalcontact/groupchat/del_join_way")
def del_join_way(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    _join_way(corp, call.require("config_id"))
    del corp.table(JOIN_WAYS)[str(call.arg("config_id"))]
    return {}


def _find(fake: FakeWecom, table: str, config_id: str) -> tuple[FakeCorp, dict[str, Any]]:
    for corp in fake.corps.values():
        way = corp.table(table).get(config_id)
        if way is not None:
            return corp, way
    raise FakeError(40097, "invalid config_id")


def simulate_scan(
    fake: FakeWecom, config_id: str, *, name: str = "扫码客户", external_userid: str | None = None
) -> dict[str, Any]:
    """A customer scans contact way `config_id`: its next user (round-robin) adds them with the way's
    state. Returns `simulate_add`'s answer plus the userid."""
    from siyu.integrations.wecom.fake.contacts import simulate_add  # H1's area, loaded on use

    with fake.lock:
        corp, way = _find(fake, WAYS, config_id)
        users = list(way["user"])
        userid = users[int(way.get("scans", 0)) % len(users)]
        way["scans"] = int(way.get("scans", 0)) + 1
        state = way["state"] or None
    added = simulate_add(fake, corp.corp_id, userid=userid, state=state, name=name, external_userid=external_userid)
    return dict(added) | {"userid": userid, "state": state}


def simulate_join_way(
    fake: FakeWecom, config_id: str, *, name: str = "入群客户", external_userid: str | None = None
) -> dict[str, Any]:
    """A customer joins through join way `config_id`: the first listed chat, join_scene 3 (QR)."""
    from siyu.integrations.wecom.fake.groups import simulate_join  # H2's area, loaded on use

    with fake.lock:
        corp, way = _find(fake, JOIN_WAYS, config_id)
        chat_id = way["chat_id_list"][0]
        state = way["state"] or None
        external_userid = external_userid or corp.next_id("wm")
    joined = simulate_join(
        fake, corp.corp_id, chat_id=chat_id, external_userid=external_userid, name=name, join_scene=3, state=state
    )
    return dict(joined or {}) | {"chat_id": chat_id, "external_userid": external_userid, "state": state}


@sim("contactways/scan")
def scan_sim(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_scan(
        fake,
        str(body.get("config_id") or ""),
        name=str(body.get("name") or "扫码客户"),
        external_userid=body.get("external_userid"),
    )


@sim("contactways/join")
def join_sim(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_join_way(
        fake,
        str(body.get("config_id") or ""),
        name=str(body.get("name") or "入群客户"),
        external_userid=body.get("external_userid"),
    )
