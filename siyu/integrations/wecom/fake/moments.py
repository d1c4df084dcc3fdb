"""Fake moments (朋友圈): `add_moment_task` starts an async job, `get_moment_task_result` finishes it
(status 3 with the moment_id), staff publish with sim "moments/publish", customers like or comment
with sim "moments/like".

Table "moments": moment_id → {"moment_id", "creator", "create_type": 0, "create_time", "text",
"senders": {userid: 0|1}, "likes": [{"external_userid", "userid", "create_time"}], "comments": [...]};
table "moment_jobs": jobid → {"moment_id", "invalid_users"}.
"""

from __future__ import annotations

from typing import Any

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom


@api("externalcontact/add_moment_task")
def add_moment_task(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    text = call.arg("text") or {}
    attachments = call.arg("attachments") or []
    if not (text.get("content") if isinstance(text, dict) else None) and not attachments:
        raise FakeError(41035, "missing text or attachments")
    visible = call.arg("visible_range") or {}
    users = list(((visible.get("sender_list") or {}).get("user_list")) or [])
    valid = [u for u in users if u in corp.users] if users else sorted(corp.users)
    invalid = [u for u in users if u not in corp.users]
    moment_id = corp.next_id("mom")
    corp.table("moments")[moment_id] = {
        "moment_id": moment_id,
        "creator": "",
        "create_type": 0,
        "create_time": int(corp.now()),
        "text": text,
        "senders": {u: 0 for u in valid},
        "likes": [],
        "comments": [],
    }
    jobid = corp.next_id("job")
    corp.table("moment_jobs")[jobid] = {"moment_id": moment_id, "invalid_users": invalid, "polls": 0}
    return {"jobid": jobid}


@api("externalcontact/get_moment_task_result")
def get_moment_task_result(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    job = corp.table("moment_jobs").get(str(call.require("jobid")))
    if job is None:
        raise FakeError(40058, "invalid jobid")
    job["polls"] += 1
    if job["polls"] == 1:  # the first poll finds the job still running, as WeCom often does
        return {"status": 2, "type": "add_moment_task"}
    return {
        "status": 3,
        "type": "add_moment_task",
        "result": {
            "errcode": 0,
            "errmsg": "ok",
            "moment_id": job["moment_id"],
            "invalid_sender_list": {"user_list": job["invalid_users"], "department_list": []},
            "invalid_external_contact_list": {"tag_list": []},
        },
    }


def _moment(corp: FakeCorp, moment_id: Any) -> dict[str, Any]:
    moment = corp.table("moments").get(str(moment_id or ""))
    if moment is None:
        raise FakeError(40058, "invalid moment_id")
    return moment


@api("externalcontact/get_moment_list")
def get_moment_list(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    start, end = int(call.require("start_time")), int(call.require("end_time"))
    if end < start or end - start > 30 * 86400:
        raise FakeError(40058, "time range must be within 30 days")
    limit = int(call.arg("limit") or 20)
    if not 1 <= limit <= 20:
        raise FakeError(40058, "limit must be 1..20")
    rows = [
        {k: m[k] for k in ("moment_id", "creator", "create_type", "create_time", "text")} | {"visible_type": 1}
        for m in sorted(corp.table("moments").values(), key=lambda m: m["moment_id"])
        if start <= m["create_time"] <= end
    ]
    offset = int(call.arg("cursor") or 0)
    return {
        "moment_list": rows[offset : offset + limit],
        "next_cursor": str(offset + limit) if offset + limit < len(rows) else "",
    }


@api("externalcontact/get_moment_task")
def get_moment_task(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    moment = _moment(corp, call.require("moment_id"))
    limit = int(call.arg("limit") or 500)
    if not 1 <= limit <= 1000:
        raise FakeError(40058, "limit must be 1..1000")
    rows = [{"userid": u, "publish_status": s} for u, s in sorted(moment["senders"].items())]
    offset = int(call.arg("cursor") or 0)
    return {
        "task_list": rows[offset : offset + limit],
        "next_cursor": str(offset + limit) if offset + limit < len(rows) else "",
    }


@api("externalcontact/get_moment_comments")
def get_moment_comments(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    moment = _moment(corp, call.require("moment_id"))
    userid = str(call.require("userid"))
    return {
        "comment_list": [
            {"external_userid": c["external_userid"], "create_time": c["create_time"]}
            for c in moment["comments"]
            if c["userid"] == userid
        ],
        "like_list": [
            {"external_userid": c["external_userid"], "create_time": c["create_time"]}
            for c in moment["likes"]
            if c["userid"] == userid
        ],
    }


@sim("moments/publish")
def sim_publish(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """A staff member publishes the moment they were asked to post."""
    with fake.lock:
        moment = _moment(fake.corp(str(body.get("corp_id", ""))), body.get("moment_id"))
        userid = str(body.get("userid", ""))
        if userid not in moment["senders"]:
            raise FakeError(60111, "the member was not asked to post this moment")
        moment["senders"][userid] = 1
        return {"moment_id": moment["moment_id"], "userid": userid}


@sim("moments/like")
def sim_like(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    """A customer likes (or, with "comment": true, comments on) a staff member's published moment."""
    with fake.lock:
        corp = fake.corp(str(body.get("corp_id", "")))
        moment = _moment(corp, body.get("moment_id"))
        userid = str(body.get("userid", ""))
        if moment["senders"].get(userid) != 1:
            raise FakeError(40058, "the member has not published this moment")
        row = {
            "external_userid": str(body.get("external_userid", "")),
            "userid": userid,
            "create_time": int(corp.now()),
        }
        moment["comments" if body.get("comment") else "likes"].append(row)
        return {"likes": len(moment["likes"]), "comments": len(moment["comments"])}
