"""Fake WeCom directory and customer lists: departments, members, who has customer contact, and
every member's customers (`batch/get_by_user`, the full sync's source).

Limits as documented: `batch/get_by_user` takes at most 100 userids and `limit` ≤ 100, pages with
`next_cursor`; `user/list` needs a known department and lists the app's visible range (a user row's
"hidden": True keeps it out, as a member outside the range); `user/list_id` lists every member.
"""

from __future__ import annotations

from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError

MAX_USERIDS = 100
MAX_LIMIT = 100
MAX_LIST_ID = 10_000


def _departments(corp: FakeCorp) -> list[dict[str, Any]]:
    if not corp.departments:
        return [{"id": 1, "name": corp.corp_id, "parentid": 0, "order": 1}]
    return [corp.departments[k] for k in sorted(corp.departments, key=int)]


def _children(corp: FakeCorp, root: int) -> set[int]:
    ids = {root}
    changed = True
    while changed:
        changed = False
        for dep in _departments(corp):
            if int(dep.get("parentid") or 0) in ids and int(dep["id"]) not in ids:
                ids.add(int(dep["id"]))
                changed = True
    return ids


def _members(corp: FakeCorp, call: ApiCall) -> list[dict[str, Any]]:
    dep = int(call.require("department_id"))
    if dep not in {int(d["id"]) for d in _departments(corp)}:
        raise FakeError(60123, "invalid party id")
    wanted = _children(corp, dep) if str(call.arg("fetch_child", "0")) == "1" else {dep}
    # Members who left the corp (status 5) are no longer listed, as on WeCom.
    return [
        u
        for _, u in sorted(corp.users.items())
        if u.get("status", 1) != 5 and not u.get("hidden") and wanted & {int(d) for d in u.get("department", [1])}
    ]


@api("department/list")
def department_list(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return {"department": _departments(corp)}


@api("department/simplelist")
def department_simplelist(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Ids, parents and order only (the list WeCom keeps open to every app since 2022-08-15)."""
    return {
        "department_id": [
            {"id": d["id"], "parentid": d.get("parentid", 0), "order": d.get("order", 1)} for d in _departments(corp)
        ]
    }


@api("user/list_id")
def user_list_id(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Every member of the corp (whatever the app's visible range), `limit` ≤ 10000 a page, cursor paging.
    Members who left are not listed."""
    limit = int(call.arg("limit", MAX_LIST_ID) or MAX_LIST_ID)
    if not 1 <= limit <= MAX_LIST_ID:
        raise FakeError(40058, f"limit must be 1..{MAX_LIST_ID}")
    raw = str(call.arg("cursor", "") or "")
    if raw and not raw.startswith("u_"):
        raise FakeError(40058, "invalid cursor")
    offset = int(raw[2:]) if raw else 0
    rows = [
        {"userid": u["userid"], "department": int((u.get("department") or [1])[0])}
        for _, u in sorted(corp.users.items())
        if u.get("status", 1) != 5
    ]
    more = offset + limit < len(rows)
    return {"dept_user": rows[offset : offset + limit], "next_cursor": f"u_{offset + limit}" if more else ""}


@api("user/list")
def user_list(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return {
        "userlist": [
            {
                "userid": u["userid"],
                "name": u.get("name", u["userid"]),
                "department": u.get("department", [1]),
                "status": u.get("status", 1),
                "mobile": u.get("mobile", ""),
            }
            for u in _members(corp, call)
        ]
    }


@api("user/simplelist")
def user_simplelist(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return {
        "userlist": [
            {"userid": u["userid"], "name": u.get("name", u["userid"]), "department": u.get("department", [1])}
            for u in _members(corp, call)
        ]
    }


@api("user/get")
def user_get(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    user = corp.users.get(str(call.require("userid")))
    if user is None or user.get("status", 1) == 5:
        raise FakeError(60111, "userid not found")
    return {
        "userid": user["userid"],
        "name": user.get("name", user["userid"]),
        "department": user.get("department", [1]),
        "status": user.get("status", 1),
    }


@api("externalcontact/get_follow_user_list")
def follow_user_list(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Members configured with the customer-contact permission (a user row's "follow", default True),
    activated or not, but not disabled (2) or gone (5)."""
    return {
        "follow_user": sorted(
            u for u, v in corp.users.items() if v.get("status", 1) in (1, 4) and v.get("follow", True)
        )
    }


@api("externalcontact/list")
def contact_list(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    userid = str(call.require("userid"))
    if userid not in corp.users:
        raise FakeError(60111, "userid not found")
    return {"external_userid": sorted(corp.contacts_of_user(userid))}


def _follow_info(follow: dict[str, Any]) -> dict[str, Any]:
    return {
        "userid": follow["userid"],
        "remark": follow.get("remark", ""),
        "description": follow.get("description", ""),
        "createtime": int(follow.get("createtime", 0)),
        "tag_id": [t["tag_id"] if isinstance(t, dict) else t for t in follow.get("tags", [])],
        "remark_mobiles": follow.get("remark_mobiles", []),
        "add_way": follow.get("add_way", 1),
        "oper_userid": follow.get("oper_userid", follow["userid"]),
        **({"state": follow["state"]} if follow.get("state") else {}),
    }


@api("externalcontact/batch/get_by_user")
def batch_get_by_user(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Customers of up to 100 members, `limit` (≤ 100) a page; the cursor is the offset."""
    userids = call.require("userid_list")
    if not isinstance(userids, list) or len(userids) > MAX_USERIDS:
        raise FakeError(40058, f"userid_list must hold at most {MAX_USERIDS} userids")
    unknown = [u for u in userids if u not in corp.users]
    if unknown:
        raise FakeError(60111, f"userid not found: {unknown[0]}")
    limit = int(call.arg("limit", 50) or 50)
    if not 1 <= limit <= MAX_LIMIT:
        raise FakeError(40058, f"limit must be 1..{MAX_LIMIT}")
    raw = str(call.arg("cursor", "") or "")
    try:
        offset = int(raw[2:]) if raw else 0
        if raw and not raw.startswith("c_"):
            raise ValueError(raw)
    except ValueError:
        raise FakeError(40058, "invalid cursor") from None
    wanted = set(userids)
    pairs = sorted(
        ((k.split("|", 1)[0], f) for k, f in corp.follows.items() if f["userid"] in wanted),
        key=lambda p: (userids.index(p[1]["userid"]), int(p[1].get("createtime", 0)), p[0]),
    )
    items = []
    for ext, follow in pairs[offset : offset + limit]:
        contact = corp.contacts.get(ext, {"external_userid": ext, "name": ext, "type": 1})
        items.append({"external_contact": dict(contact), "follow_info": _follow_info(follow)})
    follows = pairs
    more = offset + limit < len(follows)
    return {"external_contact_list": items, "next_cursor": f"c_{offset + limit}" if more else ""}
