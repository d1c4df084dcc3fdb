"""Fake enterprise customer tags (企业客户标签): `get_corp_tag_list`, `add_corp_tag`, `edit_corp_tag`,
`del_corp_tag` and `mark_tag` with WeCom's shapes and errors, plus simulations of an admin editing
tags in WeCom's own console, each pushing `change_external_tag`.

State: `corp.table("tag_groups")[group_id] = {"group_id", "group_name", "create_time", "order",
"tag": [{"id", "name", "create_time", "order"}]}`; a customer's tags live on the follow edge
(`corp.follows[...]["tags"]`, items `{"tag_id", "group_name", "tag_name", "type": 1}`).
"""

from __future__ import annotations

from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.push import push_event
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

INVALID_TAG = 40068
"""不合法的标签 id (unknown tag or group id)."""
DUPLICATE_NAME = 40071
"""标签名字已经存在."""
NAME_TOO_LONG = 40072
NO_RELATION = 84061
"""不存在外部联系人的关系."""
MAX_NAME = 30


def _groups(corp: FakeCorp) -> dict[str, Any]:
    return corp.table("tag_groups")


def _find_tag(corp: FakeCorp, tag_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    for group in _groups(corp).values():
        for tag in group["tag"]:
            if tag["id"] == tag_id:
                return group, tag
    return None


def _check_name(name: str) -> str:
    name = str(name or "").strip()
    if not name:
        raise FakeError(41035, "missing name")
    if len(name) > MAX_NAME:
        raise FakeError(NAME_TOO_LONG, "tag name too long")
    return name


@api("externalcontact/get_corp_tag_list")
def get_corp_tag_list(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Every group with its tags; `tag_id` / `group_id` filter (tag_id wins, as WeCom documents)."""
    tag_ids = set(call.arg("tag_id") or [])
    group_ids = set(call.arg("group_id") or [])
    out = []
    for group in sorted(_groups(corp).values(), key=lambda g: (g["order"], g["create_time"], g["group_id"])):
        tags = group["tag"]
        if tag_ids:
            tags = [t for t in tags if t["id"] in tag_ids]
            if not tags:
                continue
        elif group_ids and group["group_id"] not in group_ids:
            continue
        out.append({**group, "tag": [dict(t) for t in tags]})
    return {"tag_group": out}


@api("externalcontact/add_corp_tag")
def add_corp_tag(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Add tags to an existing group (`group_id`) or to a new/same-named group (`group_name`)."""
    items = list(call.require("tag"))
    group_id = call.arg("group_id")
    if group_id:
        group = _groups(corp).get(str(group_id))
        if group is None:
            raise FakeError(INVALID_TAG, f"invalid group_id {group_id}")
    else:
        group_name = _check_name(call.require("group_name"))
        group = next((g for g in _groups(corp).values() if g["group_name"] == group_name), None)
        if group is None:
            gid = corp.next_id("et")
            group = {
                "group_id": gid,
                "group_name": group_name,
                "create_time": int(corp.now()),
                "order": int(call.arg("order", 0) or 0),
                "tag": [],
            }
            _groups(corp)[gid] = group
    names = [_check_name(item.get("name", "")) for item in items]
    existing = {t["name"] for t in group["tag"]}
    if any(n in existing for n in names) or len(set(names)) != len(names):
        raise FakeError(DUPLICATE_NAME, "tag name already exists")
    created = []
    for item, name in zip(items, names, strict=True):
        tag = {"id": corp.next_id("et"), "name": name, "create_time": int(corp.now()), "order": item.get("order", 0)}
        group["tag"].append(tag)
        created.append(dict(tag))
    return {"tag_group": {**{k: v for k, v in group.items() if k != "tag"}, "tag": created}}


@api("externalcontact/edit_corp_tag")
def edit_corp_tag(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Rename (or reorder) a tag or a group; `id` is either."""
    target = str(call.require("id"))
    name = call.arg("name")
    group = _groups(corp).get(target)
    if group is not None:
        if name is not None:
            new = _check_name(name)
            if any(g["group_name"] == new and g is not group for g in _groups(corp).values()):
                raise FakeError(DUPLICATE_NAME, "group name already exists")
            group["group_name"] = new
        if call.arg("order") is not None:
            group["order"] = int(call.arg("order"))
        return {}
    found = _find_tag(corp, target)
    if found is None:
        raise FakeError(INVALID_TAG, f"invalid id {target}")
    group, tag = found
    if name is not None:
        new = _check_name(name)
        if any(t["name"] == new and t is not tag for t in group["tag"]):
            raise FakeError(DUPLICATE_NAME, "tag name already exists")
        tag["name"] = new
    if call.arg("order") is not None:
        tag["order"] = int(call.arg("order"))
    return {}


def _untag_everyone(corp: FakeCorp, tag_ids: set[str]) -> None:
    for follow in corp.follows.values():
        follow["tags"] = [t for t in follow.get("tags") or [] if t.get("tag_id") not in tag_ids]


@api("externalcontact/del_corp_tag")
def del_corp_tag(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Delete tags and/or whole groups (a group left without tags goes too, as in WeCom)."""
    tag_ids = [str(t) for t in call.arg("tag_id") or []]
    group_ids = [str(g) for g in call.arg("group_id") or []]
    if not tag_ids and not group_ids:
        raise FakeError(41035, "missing tag_id or group_id")
    gone: set[str] = set()
    for tid in tag_ids:
        found = _find_tag(corp, tid)
        if found is None:
            raise FakeError(INVALID_TAG, f"invalid tag_id {tid}")
    for gid in group_ids:
        if gid not in _groups(corp):
            raise FakeError(INVALID_TAG, f"invalid group_id {gid}")
    for tid in tag_ids:
        found = _find_tag(corp, tid)
        if found is not None:
            found[0]["tag"].remove(found[1])
            gone.add(tid)
    for gid in group_ids:
        gone.update(t["id"] for t in _groups(corp)[gid]["tag"])
        del _groups(corp)[gid]
    for gid in [g for g, group in _groups(corp).items() if not group["tag"]]:
        del _groups(corp)[gid]
    _untag_everyone(corp, gone)
    return {}


@api("externalcontact/mark_tag")
def mark_tag(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Add/remove enterprise tags on one follow edge (userid + external_userid)."""
    userid = str(call.require("userid"))
    external_userid = str(call.require("external_userid"))
    if userid not in corp.users:
        raise FakeError(60111, f"userid not found: {userid}")
    follow = corp.follow(external_userid, userid)
    if follow is None:
        raise FakeError(NO_RELATION, "no external contact relation")
    add = [str(t) for t in call.arg("add_tag") or []]
    remove = {str(t) for t in call.arg("remove_tag") or []}
    if not add and not remove:
        raise FakeError(41035, "missing add_tag or remove_tag")
    resolved = []
    for tid in add:
        found = _find_tag(corp, tid)
        if found is None:
            raise FakeError(INVALID_TAG, f"invalid tag_id {tid}")
        resolved.append(found)
    tags = [t for t in follow.get("tags") or [] if t.get("tag_id") not in remove]
    have = {t.get("tag_id") for t in tags}
    for group, tag in resolved:
        if tag["id"] not in have:
            tags.append({"group_name": group["group_name"], "tag_name": tag["name"], "type": 1, "tag_id": tag["id"]})
    follow["tags"] = tags
    return {}


def _push(corp: FakeCorp, target_id: str, tag_type: str, change_type: str) -> list[int]:
    return push_event(
        corp, {"Event": "change_external_tag", "Id": target_id, "TagType": tag_type, "ChangeType": change_type}
    )


def simulate_create(
    fake: FakeWecom, corp_id: str, *, group_name: str, names: list[str], group_id: str | None = None
) -> dict[str, Any]:
    """An admin adds tags in WeCom's console; pushes `create` per tag."""
    with fake.lock:
        corp = fake.corp(corp_id)
        call = ApiCall("externalcontact/add_corp_tag", "POST", {}, {"tag": [{"name": n} for n in names]}, b"")
        if group_id:
            call.body["group_id"] = group_id
        else:
            call.body["group_name"] = group_name
        answer = add_corp_tag(corp, call)
    group = answer["tag_group"]
    statuses = [_push(corp, t["id"], "tag", "create") for t in group["tag"]]
    return {"group_id": group["group_id"], "tag_ids": [t["id"] for t in group["tag"]], "statuses": statuses}


def simulate_rename(fake: FakeWecom, corp_id: str, *, id: str, name: str) -> dict[str, Any]:
    """An admin renames a tag or group in WeCom; pushes `update`."""
    with fake.lock:
        corp = fake.corp(corp_id)
        tag_type = "tag_group" if id in _groups(corp) else "tag"
        edit_corp_tag(corp, ApiCall("externalcontact/edit_corp_tag", "POST", {}, {"id": id, "name": name}, b""))
    return {"id": id, "statuses": _push(corp, id, tag_type, "update")}


def simulate_delete(fake: FakeWecom, corp_id: str, *, id: str) -> dict[str, Any]:
    """An admin deletes a tag or group in WeCom; pushes `delete`."""
    with fake.lock:
        corp = fake.corp(corp_id)
        tag_type = "tag_group" if id in _groups(corp) else "tag"
        body = {"group_id": [id]} if tag_type == "tag_group" else {"tag_id": [id]}
        del_corp_tag(corp, ApiCall("externalcontact/del_corp_tag", "POST", {}, body, b""))
    return {"id": id, "statuses": _push(corp, id, tag_type, "delete")}


@sim("tags/create_in_wecom")
def sim_create(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    names = body.get("names") or [body.get("name")]
    return simulate_create(
        fake,
        str(body["corp_id"]),
        group_name=str(body.get("group_name") or "企业标签"),
        names=[str(n) for n in names if n],
        group_id=body.get("group_id") or None,
    )


@sim("tags/rename_in_wecom")
def sim_rename(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_rename(fake, str(body["corp_id"]), id=str(body["id"]), name=str(body["name"]))


@sim("tags/delete_in_wecom")
def sim_delete(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_delete(fake, str(body["corp_id"]), id=str(body["id"]))
