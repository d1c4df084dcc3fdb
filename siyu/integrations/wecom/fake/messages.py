"""Fake customer mass messages (群发助手): `add_msg_template` creates a task per sender, the staff
member confirms it (sim "messages/confirm"), and the result APIs report per sender and customer.

Table "msg_tasks": msgid → {"msgid", "creator", "create_type", "chat_type", "text", "attachments",
"create_time", "senders": {userid: {"status": 0|2, "send_time"}}, "results": {userid: {external_userid:
{"status": 0|1|2|3, "send_time"}}}, "reminds": [epoch seconds of each reminder], "cancelled"}.
Times come from `corp.now()` (tests point the corp's clock at their frozen clock).
Result status: 0 not sent yet, 1 sent, 2 not a friend (any more), 3 already received a mass message
today (WeCom's per-customer cap). Sender status: 0 not sent, 2 sent.
"""

from __future__ import annotations

from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

MAX_RECIPIENTS = 10_000
MAX_REMINDS = 3
"""WeCom: a mass message (msgid) may be reminded at most three times within 24 hours."""
REMIND_SPAN = 86400
ERR_LIMIT = 41060  # "参数超出限制" (fake's code for > 10,000 ids / a 4th reminder)


def _tasks(corp: FakeCorp) -> dict[str, Any]:
    return corp.table("msg_tasks")


def _page(rows: list[Any], call: ApiCall, *, default: int, maximum: int) -> tuple[list[Any], str]:
    limit = int(call.arg("limit") or default)
    if limit < 1 or limit > maximum:
        raise FakeError(40058, f"limit must be 1..{maximum}")
    start = int(call.arg("cursor") or 0)
    end = start + limit
    return rows[start:end], (str(end) if end < len(rows) else "")


@api("externalcontact/add_msg_template")
def add_msg_template(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    chat_type = str(call.arg("chat_type") or "single")
    sender = call.arg("sender")
    externals = [str(x) for x in call.arg("external_userid") or []]
    if len(externals) > MAX_RECIPIENTS:
        raise FakeError(ERR_LIMIT, f"external_userid exceeds {MAX_RECIPIENTS}")
    if sender and sender not in corp.users:
        raise FakeError(60111, "invalid userid")
    if chat_type == "single" and not externals and not sender:
        raise FakeError(41035, "missing external_userid")
    fail_list: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    for external in externals:
        if sender:
            owner = sender if corp.follow(external, sender) else None
        else:
            follows = corp.follows_of_contact(external)
            owner = follows[0]["userid"] if follows else None
        if external not in corp.contacts or owner is None:
            fail_list.append(external)
            continue
        results.setdefault(owner, {})[external] = {"status": 0, "send_time": None}
    if sender and chat_type == "single" and not externals:
        results[sender] = {e: {"status": 0, "send_time": None} for e in corp.contacts_of_user(sender)}
    if chat_type == "group" and sender:
        results.setdefault(sender, {})
    msgid = corp.next_id("msg")
    _tasks(corp)[msgid] = {
        "msgid": msgid,
        "creator": sender or "",
        "create_type": 0,
        "chat_type": chat_type,
        "text": call.arg("text") or {},
        "attachments": call.arg("attachments") or [],
        "create_time": int(corp.now()),
        "senders": {u: {"status": 0, "send_time": None} for u in results},
        "results": results,
        "reminds": [],
        "cancelled": False,
    }
    return {"fail_list": fail_list, "msgid": msgid}


@api("externalcontact/get_groupmsg_list_v2")
def get_groupmsg_list_v2(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    start, end = int(call.require("start_time")), int(call.require("end_time"))
    if end < start or end - start > 31 * 86400:
        raise FakeError(40058, "time range must be within one month")
    chat_type = str(call.arg("chat_type") or "single")
    creator = call.arg("creator")
    rows = [
        {k: t[k] for k in ("msgid", "creator", "create_type", "text", "attachments")}
        | {"create_time": str(t["create_time"])}
        for t in sorted(_tasks(corp).values(), key=lambda t: t["msgid"])
        if t["chat_type"] == chat_type and start <= t["create_time"] <= end and (not creator or t["creator"] == creator)
    ]
    page, cursor = _page(rows, call, default=50, maximum=100)
    return {"group_msg_list": page, "next_cursor": cursor}


def _task(corp: FakeCorp, msgid: Any) -> dict[str, Any]:
    task = _tasks(corp).get(str(msgid or ""))
    if task is None:
        raise FakeError(41063, "invalid msgid")
    return task


@api("externalcontact/get_groupmsg_task")
def get_groupmsg_task(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    task = _task(corp, call.require("msgid"))
    rows = [{"userid": u, **s} for u, s in sorted(task["senders"].items())]
    page, cursor = _page(rows, call, default=500, maximum=1000)
    return {"task_list": page, "next_cursor": cursor}


@api("externalcontact/get_groupmsg_send_result")
def get_groupmsg_send_result(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    task = _task(corp, call.require("msgid"))
    userid = str(call.require("userid"))
    rows = [
        {"external_userid": e, "userid": userid, "status": r["status"], "send_time": r["send_time"]}
        for e, r in sorted(task["results"].get(userid, {}).items())
    ]
    page, cursor = _page(rows, call, default=500, maximum=1000)
    return {"send_list": page, "next_cursor": cursor}


@api("externalcontact/remind_groupmsg_send")
def remind_groupmsg_send(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    task = _task(corp, call.require("msgid"))
    if task["cancelled"]:
        raise FakeError(41063, "task cancelled")
    now = corp.now()
    recent = [t for t in task["reminds"] if now - t < REMIND_SPAN]
    if len(recent) >= MAX_REMINDS:
        raise FakeError(ERR_LIMIT, f"a mass message may be reminded at most {MAX_REMINDS} times in 24 hours")
    task["reminds"].append(int(now))
    return {}


@api("externalcontact/cancel_groupmsg_send")
def cancel_groupmsg_send(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    task = _task(corp, call.require("msgid"))
    task["cancelled"] = True
    return {}


def confirm(fake: FakeWecom, corp_id: str, *, msgid: str, userid: str, now: float | None = None) -> dict[str, Any]:
    """The staff member sends the task: each customer gets 1 (sent), 2 (not a friend any more) or
    3 (already received a mass message today)."""
    with fake.lock:
        corp = fake.corp(corp_id)
        now = corp.now() if now is None else now
        task = _task(corp, msgid)
        if userid not in task["senders"] or task["cancelled"]:
            raise FakeError(41063, "no such task for this member")
        day = int(now // 86400)
        received = {
            e
            for other in _tasks(corp).values()
            if other["msgid"] != msgid
            for results in other["results"].values()
            for e, r in results.items()
            if r["status"] == 1 and r["send_time"] and int(r["send_time"] // 86400) == day
        }
        counts = {1: 0, 2: 0, 3: 0}
        for external, result in task["results"].get(userid, {}).items():
            if result["status"] != 0:
                continue
            status = 2 if corp.follow(external, userid) is None else 3 if external in received else 1
            result["status"], result["send_time"] = status, (int(now) if status == 1 else None)
            counts[status] += 1
        task["senders"][userid] = {"status": 2, "send_time": int(now)}
        return {"msgid": msgid, "sent": counts[1], "not_friend": counts[2], "capped": counts[3]}


@sim("messages/confirm")
def sim_confirm(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return confirm(
        fake, str(body.get("corp_id", "")), msgid=str(body.get("msgid", "")), userid=str(body.get("userid", ""))
    )
