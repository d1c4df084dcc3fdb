"""Fake customer contact (客户联系): `externalcontact/get`, `externalcontact/send_welcome_msg`, and
customers acting — adding a staff member (with a 20-second, single-use welcome code), deleting
them, being deleted, being edited — each pushing WeCom's `change_external_contact` event.

    simulate_add(fake, corp_id, userid="zhangsan", state="lc1x2")   # → {"external_userid", "welcome_code"}

Sims: POST /sim/contacts/add, contacts/customer_deletes, contacts/staff_deletes, contacts/edit
(JSON bodies with `corp_id` and the function's keyword arguments).

Times (the code's issue time, follow create times) come from `corp.now()`. Tests may script a slow
`send_welcome_msg` with `corp.table(DELAYS)[SEND_API] = seconds`.
"""

from __future__ import annotations

import time
from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.push import push_event
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

WELCOME_TTL_S = 20
"""A welcome code is valid this long after the add, and only once."""
MAX_ATTACHMENTS = 9
MAX_TEXT_BYTES = 4000
CODES = "welcome_codes"
SENT = "welcome_sent"
DELAYS = "delays"
"""Table of scripted answer delays in seconds by API (tests of a slow WeCom)."""
SEND_API = "externalcontact/send_welcome_msg"
FOLLOW_PAGE = 500
"""`externalcontact/get` pages `follow_user` beyond this many follows (with `next_cursor`)."""


def _contact(corp: FakeCorp, external_userid: str) -> dict[str, Any]:
    contact = corp.contacts.get(external_userid)
    if contact is None or not corp.follows_of_contact(external_userid):
        raise FakeError(84061, "not external contact")
    return contact


@api("externalcontact/get")
def get_contact(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """The contact's profile and every staff member following it (as WeCom answers)."""
    external_userid = str(call.require("external_userid"))
    if not external_userid.startswith("wm") and not external_userid.startswith("wo"):
        raise FakeError(40096, "invalid external userid")
    contact = _contact(corp, external_userid)
    follows = corp.follows_of_contact(external_userid)
    cursor = str(call.query.get("cursor") or call.body.get("cursor") or "")
    start = int(cursor) if cursor.isdigit() else 0
    page = follows[start : start + FOLLOW_PAGE]
    more = start + FOLLOW_PAGE < len(follows)
    return {
        "external_contact": dict(contact),
        "follow_user": [dict(f) for f in page],
        "next_cursor": str(start + FOLLOW_PAGE) if more else "",
    }


@api(SEND_API)
def send_welcome(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Send a welcome with a code from the add event: 20 s, once (41051 after use; an unknown or
    expired code is an invalid parameter, 40058)."""
    delay = float(corp.table(DELAYS).get(SEND_API) or 0)
    if delay > 0:
        time.sleep(delay)
    code = str(call.require("welcome_code"))
    entry = corp.table(CODES).get(code)
    if entry is None:
        raise FakeError(40058, "invalid welcome_code")
    if entry["used"]:
        raise FakeError(41051, "customer already started chat or welcome msg sent")
    if corp.now() - float(entry["issued_at"]) > WELCOME_TTL_S:
        raise FakeError(40058, "invalid welcome_code: expired")
    text = (call.body.get("text") or {}).get("content") or ""
    attachments = call.body.get("attachments") or []
    if not text and not attachments:
        raise FakeError(41035, "text or attachments required")
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise FakeError(40058, "text.content too long")
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise FakeError(40058, "at most 9 attachments")
    entry["used"] = True
    corp.table(SENT)[code] = {
        "external_userid": entry["external_userid"],
        "userid": entry["userid"],
        "text": text,
        "attachments": attachments,
        "at": corp.now(),
    }
    return {}


def _push(corp: FakeCorp, change_type: str, userid: str, external_userid: str, times: int, **extra: Any) -> list[int]:
    fields: dict[str, Any] = {
        "Event": "change_external_contact",
        "ChangeType": change_type,
        "UserID": userid,
        "ExternalUserID": external_userid,
    }
    fields.update({k: v for k, v in extra.items() if v not in (None, "")})
    return push_event(corp, fields, times=times)


def simulate_add(
    fake: FakeWecom,
    corp_id: str,
    *,
    userid: str,
    state: str | None = None,
    name: str = "微信用户",
    external_userid: str | None = None,
    unionid: str | None = None,
    times: int = 1,
    welcome: bool = True,
    half: bool = False,
    remark: str = "",
    tag_ids: list[str] | None = None,
) -> dict[str, Any]:
    """A customer adds `userid` (through a contact way with `state`): the contact and the follow
    (with `remark` and the corp tags `tag_ids`) exist, and `add_external_contact` (or
    `add_half_external_contact` when `half`: not yet accepted) with a fresh `WelcomeCode` (unless
    `welcome` is False, as for a contact way with its own welcome) is pushed `times` times."""
    with fake.lock:
        corp = fake.corp(corp_id)
        if userid not in corp.users:
            raise FakeError(60111, "userid not found")
        external_userid = external_userid or corp.next_id("wm")
        contact = corp.contacts.setdefault(
            external_userid,
            {"external_userid": external_userid, "name": name, "type": 1, "gender": 0, "avatar": ""},
        )
        contact["name"] = name
        if unionid:
            contact["unionid"] = unionid
        now = int(corp.now())
        corp.follows[f"{external_userid}|{userid}"] = {
            "userid": userid,
            "remark": remark,
            "description": "",
            "createtime": now,
            "tags": [{"group_name": "", "tag_name": "", "tag_id": t, "type": 1} for t in tag_ids or []],
            "remark_mobiles": [],
            "add_way": 1,
            "oper_userid": external_userid,
            **({"state": state} if state else {}),
        }
        code = corp.next_id("wc") if welcome else None
        if code:
            corp.table(CODES)[code] = {
                "issued_at": corp.now(),
                "used": False,
                "external_userid": external_userid,
                "userid": userid,
            }
    # Outside the lock: siyu answers the push by calling this fake back (send_welcome_msg).
    change_type = "add_half_external_contact" if half else "add_external_contact"
    statuses = _push(corp, change_type, userid, external_userid, times, State=state, WelcomeCode=code)
    return {"external_userid": external_userid, "welcome_code": code, "statuses": statuses}


def _unfollow(fake: FakeWecom, corp_id: str, userid: str, external_userid: str) -> FakeCorp:
    with fake.lock:
        corp = fake.corp(corp_id)
        if corp.follows.pop(f"{external_userid}|{userid}", None) is None:
            raise FakeError(84061, "not external contact")
        return corp


def simulate_customer_deletes(
    fake: FakeWecom, corp_id: str, *, userid: str, external_userid: str, times: int = 1
) -> dict[str, Any]:
    """The customer deletes the staff member: `del_follow_user`."""
    corp = _unfollow(fake, corp_id, userid, external_userid)
    return {"statuses": _push(corp, "del_follow_user", userid, external_userid, times)}


def simulate_staff_deletes(
    fake: FakeWecom,
    corp_id: str,
    *,
    userid: str,
    external_userid: str,
    times: int = 1,
    source: str | None = None,
) -> dict[str, Any]:
    """The staff member deletes the customer: `del_external_contact` (`source` "DELETE_BY_TRANSFER"
    when WeCom removed the edge because the customer was transferred to another member)."""
    corp = _unfollow(fake, corp_id, userid, external_userid)
    return {"statuses": _push(corp, "del_external_contact", userid, external_userid, times, Source=source)}


def simulate_edit(
    fake: FakeWecom,
    corp_id: str,
    *,
    userid: str,
    external_userid: str,
    name: str | None = None,
    remark: str | None = None,
    tag_ids: list[str] | None = None,
    unionid: str | None = None,
    times: int = 1,
) -> dict[str, Any]:
    """The contact changed (name, unionid) or the staff member edited remark/tags: `edit_external_contact`."""
    with fake.lock:
        corp = fake.corp(corp_id)
        follow = corp.follow(external_userid, userid)
        if follow is None:
            raise FakeError(84061, "not external contact")
        contact = corp.contacts[external_userid]
        if name is not None:
            contact["name"] = name
        if unionid is not None:
            contact["unionid"] = unionid
        if remark is not None:
            follow["remark"] = remark
        if tag_ids is not None:
            follow["tags"] = [{"group_name": "", "tag_name": "", "tag_id": t, "type": 1} for t in tag_ids]
    return {"statuses": _push(corp, "edit_external_contact", userid, external_userid, times)}


def _args(body: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: body[n] for n in names if body.get(n) not in (None, "")}


@sim("contacts/add")
def sim_add(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    args = _args(body, "state", "name", "external_userid", "unionid", "remark", "tag_ids", "half")
    return simulate_add(fake, str(body.get("corp_id") or ""), userid=str(body.get("userid") or ""), **args)


@sim("contacts/customer_deletes")
def sim_customer_deletes(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_customer_deletes(
        fake,
        str(body.get("corp_id") or ""),
        userid=str(body.get("userid") or ""),
        external_userid=str(body.get("external_userid") or ""),
    )


@sim("contacts/staff_deletes")
def sim_staff_deletes(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_staff_deletes(
        fake,
        str(body.get("corp_id") or ""),
        userid=str(body.get("userid") or ""),
        external_userid=str(body.get("external_userid") or ""),
        source=str(body.get("source") or "") or None,
    )


@sim("contacts/edit")
def sim_edit(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    args = _args(body, "name", "remark", "tag_ids", "unionid")
    return simulate_edit(
        fake,
        str(body.get("corp_id") or ""),
        userid=str(body.get("userid") or ""),
        external_userid=str(body.get("external_userid") or ""),
        **args,
    )
