"""The fake server's own page (`/` of the fake, `/fake-wecom/` in the demo): the corps it hosts and a
form per simulation (`app.simulations()`), so a demo user can act as WeCom's users — a customer scans
a contact way, deletes a staff member, a staff member confirms a mass message…

Also two read APIs the integration page's connection test uses, for when no area module provides them:
`agent/get` (the self-built app) and `externalcontact/get_follow_user_list`.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from siyu.integrations.wecom.fake import app as fake_app
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

router = APIRouter()

EXAMPLES: dict[str, dict[str, Any]] = {
    "contacts/add": {"userid": "<userid>", "name": "新客户", "state": ""},
    "contacts/customer_deletes": {"userid": "<userid>", "external_userid": "<wm…>"},
    "contacts/staff_deletes": {"userid": "<userid>", "external_userid": "<wm…>"},
    "contacts/edit": {"userid": "<userid>", "external_userid": "<wm…>", "remark": "老客户"},
    "contactways/scan": {"config_id": "<config_id>", "name": "扫码客户"},
    "contactways/join": {"config_id": "<config_id>", "name": "入群客户"},
    "messages/confirm": {"msgid": "<msgid>", "userid": "<userid>"},
    "moments/publish": {"jobid": "<jobid>", "userid": "<userid>"},
    "groups/join": {"chat_id": "<wr…>", "external_userid": "<wm…>", "name": "入群客户"},
    "groups/leave": {"chat_id": "<wr…>", "external_userid": "<wm…>"},
    "sidebar/open_chat": {"userid": "<userid>", "external_userid": "<wm…>"},
}
"""Starting bodies for the forms (placeholders in <…>); `corp_id` is added for every simulation."""

SIM_LABELS: dict[str, str] = {
    "contacts/add": "客户添加成员（带欢迎语）",
    "contacts/customer_deletes": "客户删除成员",
    "contacts/staff_deletes": "成员删除客户",
    "contacts/edit": "成员修改客户备注",
    "contactways/scan": "客户扫「联系我」二维码",
    "contactways/join": "客户扫入群二维码",
    "messages/confirm": "成员确认群发",
    "moments/publish": "成员发表朋友圈",
}


def _corp_rows(fake: FakeWecom) -> str:
    rows = []
    for corp in fake.corps.values():
        users = ", ".join(html.escape(f"{u.get('name', '')} ({uid})") for uid, u in list(corp.users.items())[:12])
        more = "…" if len(corp.users) > 12 else ""
        rows.append(
            f"<tr><td><code>{html.escape(corp.corp_id)}</code></td><td>{len(corp.users)}</td>"
            f"<td>{len(corp.contacts)}</td><td>{len(corp.follows)}</td><td>{users}{more}</td>"
            f"<td><code>{html.escape(corp.callback_url or '—')}</code></td></tr>"
        )
    return "".join(rows) or '<tr><td colspan="6">no corp yet — configure one on siyu\'s 企业微信 page</td></tr>'


def _example(name: str, corp: FakeCorp | None) -> str:
    body: dict[str, Any] = {"corp_id": corp.corp_id if corp else "<corp_id>"} | EXAMPLES.get(name, {})
    if corp is not None and corp.users and body.get("userid") == "<userid>":
        body["userid"] = next(iter(corp.users))
    return json.dumps(body, ensure_ascii=False, indent=1)


PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>fake WeCom</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1d273b; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
td, th {{ border: 1px solid #dce1e7; padding: .3rem .6rem; text-align: left; vertical-align: top; }}
.sims {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1rem; }}
form {{ border: 1px solid #dce1e7; border-radius: 6px; padding: .8rem; }}
textarea {{ width: 100%; min-height: 7rem; font-family: monospace; }}
pre {{ white-space: pre-wrap; background: #f6f8fb; padding: .4rem; margin: .4rem 0 0; }}
</style></head>
<body>
<h1>fake WeCom</h1>
<p>siyu's built-in stand-in for 企业微信. API: <code>{base}cgi-bin/</code> ·
simulations: <code>{base}sim/&lt;name&gt;</code></p>
<h2>Corps</h2>
<table id="corps"><tr><th>corp id</th><th>members</th><th>external contacts</th><th>friend edges</th>
<th>members (userid)</th><th>callback URL</th></tr>{corps}</table>
<h2>Simulations</h2>
<div class="sims">{forms}</div>
<script>
document.querySelectorAll("form[data-sim]").forEach(function (form) {{
  form.addEventListener("submit", async function (event) {{
    event.preventDefault();
    const out = form.querySelector("pre");
    let body;
    try {{ body = JSON.parse(form.querySelector("textarea").value || "{{}}"); }}
    catch (e) {{ out.textContent = "JSON: " + e.message; return; }}
    const response = await fetch(form.action, {{method: "POST", headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify(body)}});
    out.textContent = response.status + " " + await response.text();
  }});
}});
</script>
</body></html>"""


@router.get("/", response_class=HTMLResponse)
def console_page(request: Request) -> HTMLResponse:
    """The fake's page: hosted corps and one form per simulation."""
    fake: FakeWecom = request.app.state.fake
    base = str(request.scope.get("root_path") or "") + "/"
    with fake.lock:
        corp = next(iter(fake.corps.values()), None)
        corps = _corp_rows(fake)
        forms = "".join(
            f'<form data-sim="{html.escape(name)}" action="{html.escape(base)}sim/{html.escape(name)}" method="post">'
            f"<strong>{html.escape(name)}</strong> {html.escape(SIM_LABELS.get(name, ''))}"
            f'<textarea name="body">{html.escape(_example(name, corp))}</textarea>'
            f'<button type="submit">run</button><pre></pre></form>'
            for name in fake_app.simulations()
        )
    return HTMLResponse(PAGE.format(base=html.escape(base), corps=corps, forms=forms or "<p>no simulation</p>"))


def _agent_get(corp: FakeCorp, call: fake_app.ApiCall) -> dict[str, Any]:
    agent_id = str(call.require("agentid"))
    if agent_id != corp.agent_id:
        raise FakeError(40056, "invalid agentid")
    return {"agentid": int(agent_id), "name": "siyu", "square_logo_url": "", "description": "", "close": 0}


def _follow_user_list(corp: FakeCorp, call: fake_app.ApiCall) -> dict[str, Any]:
    users = sorted({f["userid"] for f in corp.follows.values()} | set(corp.users))
    return {"follow_user": users}


# Registered only when no area module (loaded earlier) provides them.
for _name, _handler in (("agent/get", _agent_get), ("externalcontact/get_follow_user_list", _follow_user_list)):
    if _name not in fake_app._apis:
        fake_app.api(_name)(_handler)
