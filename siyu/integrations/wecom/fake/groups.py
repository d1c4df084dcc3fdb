"""Fake customer groups (客户群): `externalcontact/groupchat/list` and `groupchat/get` with WeCom's
shapes and limits, plus simulations of what happens in WeCom (a staff member creates a group, a
customer joins or leaves, the group is dismissed), each pushing the `change_external_chat` event.

State: `corp.table("groups")[chat_id] = {"chat_id", "name", "owner", "create_time", "notice",
"status", "member_list": [...], "admin_list": [{"userid"}], "member_version"}`; a dismissed group
is removed (WeCom no longer returns it).
"""

from __future__ import annotations

from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.push import push_event
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

MAX_LIST_LIMIT = 1000
CHAT_NOT_FOUND = 40050
"""errcode answered for an unknown or dismissed chat_id ("chat_id 不存在")."""
INVALID_LIMIT = 40058
"""Invalid parameter (limit outside 1…1000, bad cursor)."""
JOIN_SCENE_INVITE = 1  # 由群成员邀请入群（直接邀请入群）
JOIN_SCENE_LINK = 2  # 由群成员邀请入群（通过邀请链接入群）
JOIN_SCENE_QR = 3  # 通过扫描群二维码入群
EVENT_JOIN_SCENE_INVITE = 0  # the event's JoinScene: 0 = 由成员邀请入群（直接邀请或邀请链接）
EVENT_JOIN_SCENE_QR = 3  # the event's JoinScene: 3 = 通过扫描群二维码入群
QUIT_SCENE_SELF = 0  # 自己退群
QUIT_SCENE_REMOVED = 1  # 群主/群管理员移出


def _groups(corp: FakeCorp) -> dict[str, Any]:
    return corp.table("groups")


def _chat(corp: FakeCorp, chat_id: str) -> dict[str, Any]:
    chat = _groups(corp).get(chat_id)
    if chat is None:
        raise FakeError(CHAT_NOT_FOUND, f"chat_id not found: {chat_id}")
    return chat


@api("externalcontact/groupchat/list")
def list_chats(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Groups by creation, `limit` (1…1000) per page, the cursor an opaque offset."""
    limit = int(call.require("limit"))
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise FakeError(INVALID_LIMIT, "invalid limit, must be 1-1000")
    status_filter = int(call.arg("status_filter", 0) or 0)
    owners = list((call.arg("owner_filter") or {}).get("userid_list") or [])
    cursor = str(call.arg("cursor") or "")
    try:
        offset = int(cursor[1:]) if cursor else 0
    except ValueError:
        raise FakeError(INVALID_LIMIT, "invalid cursor") from None
    chats = [
        c
        for c in sorted(_groups(corp).values(), key=lambda c: (c["create_time"], c["chat_id"]))
        if (not status_filter or c.get("status", 0) == status_filter) and (not owners or c["owner"] in owners)
    ]
    page = chats[offset : offset + limit]
    answer: dict[str, Any] = {
        "group_chat_list": [{"chat_id": c["chat_id"], "status": c.get("status", 0)} for c in page]
    }
    if offset + limit < len(chats):
        answer["next_cursor"] = f"c{offset + limit}"
    return answer


@api("externalcontact/groupchat/get")
def get_chat(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """One group's details: owner, admins and members (names only with `need_name`=1)."""
    chat = _chat(corp, str(call.require("chat_id")))
    need_name = int(call.arg("need_name", 0) or 0) == 1
    members = []
    for member in chat["member_list"]:
        item = {k: v for k, v in member.items() if k != "name" or need_name}
        members.append(item)
    detail = {k: v for k, v in chat.items() if k not in ("member_list", "status")}
    detail["member_list"] = members
    return {"group_chat": detail}


def event_join_scene(scene: int) -> int:
    """The callback's JoinScene for a member's join_scene: the event knows only 0 (invited, directly
    or by link) and 3 (scanned the group QR code)."""
    return EVENT_JOIN_SCENE_QR if scene == JOIN_SCENE_QR else EVENT_JOIN_SCENE_INVITE


def _member(
    corp: FakeCorp,
    *,
    userid: str | None,
    external_userid: str | None,
    name: str,
    scene: int,
    state: str | None,
    invitor: str | None = None,
) -> dict[str, Any]:
    base: dict[str, Any] = {"join_time": int(corp.now()), "join_scene": scene, "group_nickname": ""}
    if invitor and scene != JOIN_SCENE_QR:
        base["invitor"] = {"userid": invitor}
    if userid is not None:
        user = corp.users.get(userid)
        if user is None:
            raise FakeError(60111, f"userid not found: {userid}")
        return {"userid": userid, "type": 1, **base, "name": user["name"]}
    assert external_userid is not None
    contact = corp.contacts.setdefault(
        external_userid, {"external_userid": external_userid, "name": name, "type": 1, "gender": 0, "avatar": ""}
    )
    member: dict[str, Any] = {
        "userid": external_userid,
        "type": 2,
        **base,
        "name": contact.get("name") or name,
    }
    if contact.get("unionid"):
        member["unionid"] = contact["unionid"]
    if state:
        member["state"] = state
    return member


def _push(corp: FakeCorp, chat_id: str, change_type: str, extra: dict[str, Any] | None = None) -> list[int]:
    fields: dict[str, Any] = {"Event": "change_external_chat", "ChatId": chat_id, "ChangeType": change_type}
    fields.update(extra or {})
    return push_event(corp, fields)


def simulate_create(
    fake: FakeWecom,
    corp_id: str,
    *,
    owner: str,
    name: str = "客户群",
    members: list[dict[str, Any]] | None = None,
    admins: list[str] | None = None,
    chat_id: str | None = None,
) -> dict[str, Any]:
    """A staff member creates a group (`members`: [{"external_userid", "name"} | {"userid"}]); pushes `create`."""
    with fake.lock:
        corp = fake.corp(corp_id)
        chat_id = chat_id or corp.next_id("wr")
        member_list = [_member(corp, userid=owner, external_userid=None, name="", scene=JOIN_SCENE_INVITE, state=None)]
        for m in members or []:
            member_list.append(
                _member(
                    corp,
                    userid=m.get("userid"),
                    external_userid=m.get("external_userid") or (None if m.get("userid") else corp.next_id("wm")),
                    name=str(m.get("name") or "客户"),
                    scene=JOIN_SCENE_INVITE,
                    state=None,
                    invitor=owner,
                )
            )
        _groups(corp)[chat_id] = {
            "chat_id": chat_id,
            "name": name,
            "owner": owner,
            "create_time": int(corp.now()),
            "notice": "",
            "status": 0,
            "member_list": member_list,
            "admin_list": [{"userid": a} for a in admins or []],
            "member_version": corp.next_id("v"),
        }
    statuses = _push(corp, chat_id, "create")
    return {"chat_id": chat_id, "members": [m["userid"] for m in member_list], "statuses": statuses}


def simulate_join(
    fake: FakeWecom,
    corp_id: str,
    *,
    chat_id: str,
    external_userid: str | None = None,
    name: str = "客户",
    join_scene: int = JOIN_SCENE_QR,
    state: str | None = None,
    userid: str | None = None,
    invitor: str | None = None,
) -> dict[str, Any]:
    """A customer (or staff member, `userid`) joins; pushes `update` / `add_member` with JoinScene
    (0 or 3, see `event_join_scene`). Someone already in the group: nothing changes, nothing is pushed."""
    with fake.lock:
        corp = fake.corp(corp_id)
        chat = _chat(corp, chat_id)
        if userid is None:
            external_userid = external_userid or corp.next_id("wm")
        who = userid or external_userid
        if any(m["userid"] == who for m in chat["member_list"]):
            return {"chat_id": chat_id, "external_userid": external_userid, "userid": userid, "statuses": []}
        chat["member_list"].append(
            _member(
                corp,
                userid=userid,
                external_userid=external_userid,
                name=name,
                scene=join_scene,
                state=state,
                invitor=invitor or chat["owner"],
            )
        )
        last, chat["member_version"] = chat["member_version"], corp.next_id("v")
        current = chat["member_version"]
    statuses = _push(
        corp,
        chat_id,
        "update",
        {
            "UpdateDetail": "add_member",
            "JoinScene": event_join_scene(join_scene),
            "MemChangeCnt": 1,
            "MemChangeList": {"Item": who},
            "LastMemVer": last,
            "CurMemVer": current,
        },
    )
    return {"chat_id": chat_id, "external_userid": external_userid, "userid": userid, "statuses": statuses}


def simulate_leave(
    fake: FakeWecom, corp_id: str, *, chat_id: str, member_id: str, quit_scene: int = QUIT_SCENE_SELF
) -> dict[str, Any]:
    """A member (external_userid or userid) leaves or is removed; pushes `update` / `del_member` with QuitScene."""
    with fake.lock:
        corp = fake.corp(corp_id)
        chat = _chat(corp, chat_id)
        chat["member_list"] = [m for m in chat["member_list"] if m["userid"] != member_id]
        chat["admin_list"] = [a for a in chat["admin_list"] if a["userid"] != member_id]
        last, chat["member_version"] = chat["member_version"], corp.next_id("v")
        current = chat["member_version"]
    statuses = _push(
        corp,
        chat_id,
        "update",
        {
            "UpdateDetail": "del_member",
            "QuitScene": quit_scene,
            "MemChangeCnt": 1,
            "MemChangeList": {"Item": member_id},
            "LastMemVer": last,
            "CurMemVer": current,
        },
    )
    return {"chat_id": chat_id, "statuses": statuses}


def simulate_update(
    fake: FakeWecom, corp_id: str, *, chat_id: str, name: str | None = None, owner: str | None = None
) -> dict[str, Any]:
    """The group is renamed (`change_name`) or handed to another owner (`change_owner`)."""
    with fake.lock:
        corp = fake.corp(corp_id)
        chat = _chat(corp, chat_id)
        if name is not None:
            chat["name"] = name
        if owner is not None:
            if owner not in corp.users:
                raise FakeError(60111, f"userid not found: {owner}")
            chat["owner"] = owner
            if all(m["userid"] != owner for m in chat["member_list"]):
                chat["member_list"].append(
                    _member(corp, userid=owner, external_userid=None, name="", scene=JOIN_SCENE_INVITE, state=None)
                )
    detail = "change_owner" if owner is not None else "change_name"
    return {"chat_id": chat_id, "statuses": _push(corp, chat_id, "update", {"UpdateDetail": detail})}


def simulate_change_notice(fake: FakeWecom, corp_id: str, *, chat_id: str, notice: str) -> dict[str, Any]:
    """The owner edits the group notice (群公告); pushes `update` / `change_notice`."""
    with fake.lock:
        corp = fake.corp(corp_id)
        _chat(corp, chat_id)["notice"] = notice
    return {"chat_id": chat_id, "statuses": _push(corp, chat_id, "update", {"UpdateDetail": "change_notice"})}


def simulate_dismiss(fake: FakeWecom, corp_id: str, *, chat_id: str) -> dict[str, Any]:
    """The owner dismisses the group: it disappears from WeCom; pushes `dismiss`."""
    with fake.lock:
        corp = fake.corp(corp_id)
        _chat(corp, chat_id)
        del _groups(corp)[chat_id]
    return {"chat_id": chat_id, "statuses": _push(corp, chat_id, "dismiss")}


@sim("groups/create")
def sim_create(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_create(
        fake,
        str(body["corp_id"]),
        owner=str(body["owner"]),
        name=str(body.get("name") or "客户群"),
        members=list(body.get("members") or []),
        admins=list(body.get("admins") or []),
    )


@sim("groups/join")
def sim_join(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_join(
        fake,
        str(body["corp_id"]),
        chat_id=str(body["chat_id"]),
        external_userid=body.get("external_userid") or None,
        name=str(body.get("name") or "客户"),
        join_scene=int(body.get("join_scene") or JOIN_SCENE_QR),
        state=body.get("state") or None,
        userid=body.get("userid") or None,
    )


@sim("groups/leave")
def sim_leave(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_leave(
        fake,
        str(body["corp_id"]),
        chat_id=str(body["chat_id"]),
        member_id=str(body["member_id"]),
        quit_scene=int(body.get("quit_scene") or QUIT_SCENE_SELF),
    )


@sim("groups/change_notice")
def sim_change_notice(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_change_notice(fake, str(body["corp_id"]), chat_id=str(body["chat_id"]), notice=str(body["notice"]))


@sim("groups/dismiss")
def sim_dismiss(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_dismiss(fake, str(body["corp_id"]), chat_id=str(body["chat_id"]))
