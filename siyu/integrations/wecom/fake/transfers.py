"""Fake WeCom transfers (在职继承 / 离职继承) of customers and groups.

Documented behaviour kept here: at most 100 customers (or chats) per call; a customer may be
transferred at most twice in 90 days by on-job transfers (per-customer errcode 40129; resigned
transfers are not limited); the takeover happens 24 h after
the call unless the customer refuses (on-job) — the fake waits for `complete_transfer` / sim
"transfers/complete" instead of a clock; `transfer_result` reports 1 接替完毕, 2 等待接替,
3 客户拒绝, 4 接替成员客户达到上限. Resigned transfers need a member who left (status 5),
on-job ones a member still there (else 41054).
"""

from __future__ import annotations

from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

MAX_PER_CALL = 100
MAX_TRANSFERS_90_DAYS = 2
TAKEOVER_DELAY_S = 24 * 3600
NINETY_DAYS_S = 90 * 86400


def _records(corp: FakeCorp) -> list[dict[str, Any]]:
    return corp.table("transfers").setdefault("customers", [])


def _submit(corp: FakeCorp, call: ApiCall, kind: str) -> dict[str, Any]:
    handover = str(call.require("handover_userid"))
    takeover = str(call.require("takeover_userid"))
    ids = call.require("external_userid")
    if not isinstance(ids, list) or len(ids) > MAX_PER_CALL:
        raise FakeError(40058, f"external_userid must hold at most {MAX_PER_CALL} ids")
    giver, taker = corp.users.get(handover), corp.users.get(takeover)
    if giver is None or taker is None:
        raise FakeError(60111, "userid not found")
    if taker.get("status", 1) != 1:
        raise FakeError(41054, "takeover user status not allowed")
    left = giver.get("status", 1) == 5
    if (kind == "resigned") != left:
        raise FakeError(41054, "handover user status not allowed for this transfer")
    now = corp.now()
    answers = []
    for ext in ids:
        recent = [
            r
            for r in _records(corp)
            if r["external_userid"] == ext and r["kind"] == "on_job" and r["submitted"] > now - NINETY_DAYS_S
        ]
        if corp.follow(ext, handover) is None:
            code = 84061
        elif any(r["external_userid"] == ext and r["status"] == 2 for r in _records(corp)):
            code = 41054  # a transfer of this customer is still waiting
        elif kind == "on_job" and len(recent) >= MAX_TRANSFERS_90_DAYS:
            code = 40129
        else:
            code = 0
            _records(corp).append(
                {
                    "kind": kind,
                    "handover_userid": handover,
                    "takeover_userid": takeover,
                    "external_userid": ext,
                    "status": 2,
                    "submitted": now,
                    "takeover_time": int(now + TAKEOVER_DELAY_S),
                }
            )
        answers.append({"external_userid": ext, "errcode": code})
    return {"customer": answers}


def _result(corp: FakeCorp, call: ApiCall, kind: str) -> dict[str, Any]:
    handover = str(call.require("handover_userid"))
    takeover = str(call.require("takeover_userid"))
    rows = [
        r
        for r in _records(corp)
        if r["kind"] == kind and r["handover_userid"] == handover and r["takeover_userid"] == takeover
    ]
    raw = str(call.arg("cursor", "") or "")
    offset = int(raw) if raw.isdigit() else 0
    page = rows[offset : offset + 1000]
    more = offset + 1000 < len(rows)
    return {
        "customer": [
            {"external_userid": r["external_userid"], "status": r["status"], "takeover_time": r["takeover_time"]}
            for r in page
        ],
        "next_cursor": str(offset + 1000) if more else "",
    }


@api("externalcontact/transfer_customer")
def transfer_customer(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return _submit(corp, call, "on_job")


@api("externalcontact/resigned/transfer_customer")
def resigned_transfer_customer(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return _submit(corp, call, "resigned")


@api("externalcontact/transfer_result")
def transfer_result(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return _result(corp, call, "on_job")


@api("externalcontact/resigned/transfer_result")
def resigned_transfer_result(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return _result(corp, call, "resigned")


@api("externalcontact/get_unassigned_list")
def get_unassigned_list(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    """Customers of members who left and were not handed over yet (cursor paging, page_size ≤ 1000)."""
    size = int(call.arg("page_size", 1000) or 1000)
    if not 1 <= size <= 1000:
        raise FakeError(40058, "page_size must be 1..1000")
    waiting = {(r["external_userid"], r["handover_userid"]) for r in _records(corp) if r["status"] in (1, 2)}
    rows = [
        {
            "handover_userid": f["userid"],
            "external_userid": key.split("|", 1)[0],
            "dimission_time": int(corp.users[f["userid"]].get("dimission_time", 0)),
        }
        for key, f in sorted(corp.follows.items())
        if corp.users.get(f["userid"], {}).get("status", 1) == 5 and (key.split("|", 1)[0], f["userid"]) not in waiting
    ]
    raw = str(call.arg("cursor", "") or "")
    offset = int(raw) if raw.isdigit() else 0
    more = offset + size < len(rows)
    return {
        "info": rows[offset : offset + size],
        "is_last": not more,
        "next_cursor": str(offset + size) if more else "",
    }


def _group_transfer(corp: FakeCorp, call: ApiCall, onjob: bool) -> dict[str, Any]:
    chats = call.require("chat_id_list")
    owner = str(call.require("new_owner"))
    if not isinstance(chats, list) or len(chats) > MAX_PER_CALL:
        raise FakeError(40058, f"chat_id_list must hold at most {MAX_PER_CALL} chats")
    if corp.users.get(owner, {}).get("status", 0) != 1:
        raise FakeError(60111, "new_owner not found")
    groups = corp.table("groups")
    failed = []
    for chat_id in chats:
        chat = groups.get(chat_id)
        if not isinstance(chat, dict):
            failed.append({"chat_id": chat_id, "errcode": 40050, "errmsg": "chat not exists"})
            continue
        old = chat.get("owner")
        old_left = corp.users.get(str(old), {}).get("status", 1) == 5
        if onjob == old_left:
            failed.append({"chat_id": chat_id, "errcode": 41054, "errmsg": "owner status not allowed"})
            continue
        chat["owner"] = owner
        corp.table("transfers").setdefault("groups", []).append({"chat_id": chat_id, "old": old, "new": owner})
    return {"failed_chat_list": failed}


@api("externalcontact/groupchat/transfer")
def groupchat_transfer(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return _group_transfer(corp, call, onjob=False)


@api("externalcontact/groupchat/onjob_transfer")
def groupchat_onjob_transfer(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return _group_transfer(corp, call, onjob=True)


def complete_transfer(corp: FakeCorp, external_userid: str, *, status: int = 1) -> int:
    """The waiting transfer of `external_userid` ends with `status` (1 taken over, 3 refused, 4 capped);
    on 1 the friend edge moves to the takeover member. Returns how many transfers ended."""
    ended = 0
    for r in _records(corp):
        if r["external_userid"] != external_userid or r["status"] != 2:
            continue
        r["status"] = status
        ended += 1
        if status == 1:
            old = corp.follows.pop(f"{external_userid}|{r['handover_userid']}", None) or {}
            corp.follows[f"{external_userid}|{r['takeover_userid']}"] = {
                **old,
                "userid": r["takeover_userid"],
                "createtime": r["takeover_time"],
                "add_way": 202 if r["kind"] == "resigned" else 201,
                "oper_userid": r["takeover_userid"],
            }
    return ended


@sim("transfers/complete")
def sim_complete(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """{corp_id, external_userid, status?}: WeCom's 24 h are over (or the customer refused)."""
    with fake.lock:
        corp = fake.corp(str(body.get("corp_id", "")))
        return {
            "ended": complete_transfer(corp, str(body.get("external_userid", "")), status=int(body.get("status", 1)))
        }
