"""The fake WeCom's side of the sidebar (侧边栏): OAuth for members, JS-SDK tickets, and a JS shim.

APIs (documented shapes):
- `auth/getuserinfo?code=` (app secret) → for a corp member `{"userid": ...}` (plus `"user_ticket"` when
  the scope was snsapi_privateinfo), for a non-member (a WeChat user) `{"openid": ..., "external_userid":
  ...}`, as the current API answers; an unknown or used code → 40029 (valid 5 minutes, usable once).
- `get_jsapi_ticket` and `ticket/get?type=agent_config` → `{"ticket", "expires_in": 7200}`.

Pages and scripts (router, no access token):
- `GET /connect/oauth2/authorize?appid=&redirect_uri=&state=&userid=` — signs the "current member" in
  (the `userid` query, else the one the sim "sidebar/open_chat" set) and redirects to
  `redirect_uri?code=…&state=…`, as WeCom does inside its client. Someone who is not in `corp.users`
  gets a non-member code (openid + external_userid answer).
- `GET /js/jwxwork.js` — a shim of `wx` (`config`, `agentConfig`, `ready`, `error`, `invoke`) whose
  `config`/`agentConfig` have their signatures checked by `GET /sidebar/verify`, and whose
  `invoke("getCurExternalContact")` / `invoke("sendChatMessage")` read and record the fake chat.

Sims: "sidebar/open_chat" {corp_id, userid, external_userid} — the member opens the sidebar in a chat
with that customer. Recorded sends: `corp.table("sidebar")["sent"]` (see `sent_messages`).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from wechatpy.utils import WeChatSigner

from siyu.integrations.wecom.fake.app import ApiCall, api, sim
from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

CODE_TTL_S = 300
TICKET_TTL_S = 7200
router = APIRouter()


def _table(corp: FakeCorp) -> dict[str, Any]:
    table = corp.table("sidebar")
    table.setdefault("codes", {})
    table.setdefault("tickets", {})
    table.setdefault("sent", [])
    table.setdefault("verified", [])
    return table


def js_signature(ticket: str, noncestr: str, timestamp: str, url: str) -> str:
    """WeCom's JS-SDK signature: sha1 of the sorted `key=value` pairs joined by '&'."""
    signer = WeChatSigner(delimiter=b"&")
    signer.add_data(f"noncestr={noncestr}", f"jsapi_ticket={ticket}", f"timestamp={timestamp}", f"url={url}")
    return str(signer.signature)


def _ticket(corp: FakeCorp, kind: str) -> dict[str, Any]:
    tickets = _table(corp)["tickets"]
    current = tickets.get(kind)
    if current is None or current["expires"] <= time.time():
        current = {"ticket": corp.next_id(f"{kind}-ticket-"), "expires": time.time() + TICKET_TTL_S}
        tickets[kind] = current
    return {"ticket": current["ticket"], "expires_in": int(current["expires"] - time.time())}


@api("get_jsapi_ticket")
def get_jsapi_ticket(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    return _ticket(corp, "corp")


@api("ticket/get")
def get_agent_ticket(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    if call.arg("type") != "agent_config":
        raise FakeError(40004, "invalid type")
    return _ticket(corp, "agent")


@api("auth/getuserinfo")
def getuserinfo(corp: FakeCorp, call: ApiCall) -> dict[str, Any]:
    code = str(call.require("code"))
    entry = _table(corp)["codes"].pop(code, None)
    if entry is None or entry["expires"] <= time.time():
        raise FakeError(40029, "invalid code")
    if entry.get("userid"):
        answer = {"userid": entry["userid"]}
        if entry.get("scope") == "snsapi_privateinfo":
            answer["user_ticket"] = corp.next_id("ticket")
        return answer
    return {"openid": entry["openid"], "external_userid": entry["external_userid"]}


def issue_code(corp: FakeCorp, userid: str, *, scope: str = "snsapi_base") -> str:
    """A one-time OAuth code for the corp member `userid` (what WeCom appends to the redirect)."""
    code = corp.next_id("code")
    _table(corp)["codes"][code] = {"userid": userid, "scope": scope, "expires": time.time() + CODE_TTL_S}
    return code


def issue_outsider_code(corp: FakeCorp, *, openid: str, external_userid: str = "") -> str:
    """A one-time OAuth code for someone who is not a corp member (a WeChat user)."""
    code = corp.next_id("code")
    _table(corp)["codes"][code] = {
        "openid": openid,
        "external_userid": external_userid,
        "expires": time.time() + CODE_TTL_S,
    }
    return code


def open_chat(fake: FakeWecom, corp_id: str, *, userid: str, external_userid: str) -> dict[str, Any]:
    """The member `userid` opens the sidebar in a chat with `external_userid`."""
    with fake.lock:
        corp = fake.corp(corp_id)
        _table(corp)["current"] = {"userid": userid, "external_userid": external_userid}
        return {"userid": userid, "external_userid": external_userid}


def sent_messages(fake: FakeWecom, corp_id: str) -> list[dict[str, Any]]:
    """Every `sendChatMessage` the shim recorded for the corp, oldest first."""
    with fake.lock:
        return list(_table(fake.corp(corp_id))["sent"])


@sim("sidebar/open_chat")
def sim_open_chat(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    for name in ("corp_id", "userid", "external_userid"):
        if not body.get(name):
            raise FakeError(41035, f"missing {name}")
    return open_chat(
        fake, str(body["corp_id"]), userid=str(body["userid"]), external_userid=str(body["external_userid"])
    )


def _fake(request: Request) -> FakeWecom:
    fake: FakeWecom = request.app.state.fake
    return fake


def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/connect/oauth2/authorize")
def authorize(
    request: Request,
    appid: str = "",
    redirect_uri: str = "",
    state: str = "",
    userid: str = "",
    scope: str = "snsapi_base",
) -> Response:
    """WeCom's OAuth page: inside the WeCom client it redirects at once with a code for the member."""
    fake = _fake(request)
    with fake.lock:
        try:
            corp = fake.corp(appid)
        except FakeError as exc:
            return PlainTextResponse(exc.message, status_code=400)
        member = userid or _table(corp).get("current", {}).get("userid")
        if not member or not redirect_uri:
            return PlainTextResponse("no member signed in to the fake WeCom client", status_code=400)
        if member in corp.users:
            code = issue_code(corp, member, scope=scope)
        else:  # not a member of the corp: WeCom answers with an openid
            code = issue_outsider_code(corp, openid=f"o{member}", external_userid=f"wm{member}")
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode({'code': code, 'state': state})}", status_code=302)


@router.get("/sidebar/verify")
def verify(
    request: Request,
    corpid: str = "",
    kind: str = "corp",
    url: str = "",
    noncestr: str = "",
    timestamp: str = "",
    signature: str = "",
    agentid: str = "",
) -> Response:
    """Check a `wx.config` (kind corp) or `wx.agentConfig` (kind agent) signature as WeCom's client does."""
    fake = _fake(request)
    with fake.lock:
        try:
            corp = fake.corp(corpid)
        except FakeError as exc:
            return _cors(JSONResponse({"errcode": exc.code, "errmsg": exc.message}))
        table = _table(corp)
        current = table["tickets"].get("agent" if kind == "agent" else "corp")
        ok = current is not None and signature == js_signature(
            current["ticket"], noncestr, timestamp, url.split("#", 1)[0]
        )
        if kind == "agent" and agentid != corp.agent_id:
            ok = False
        table["verified"].append({"kind": kind, "url": url, "ok": ok})
    if not ok:
        return _cors(JSONResponse({"errcode": 40093, "errmsg": f"{kind}Config:fail invalid signature"}))
    return _cors(JSONResponse({"errcode": 0, "errmsg": "ok"}))


@router.get("/sidebar/current")
def current(request: Request, corpid: str = "") -> Response:
    """The chat the member has open (what `getCurExternalContact` answers)."""
    fake = _fake(request)
    with fake.lock:
        try:
            chat = _table(fake.corp(corpid)).get("current")
        except FakeError as exc:
            return _cors(JSONResponse({"err_msg": f"getCurExternalContact:fail {exc.message}"}))
    if not chat:
        return _cors(JSONResponse({"err_msg": "getCurExternalContact:fail no chat"}))
    return _cors(JSONResponse({"err_msg": "getCurExternalContact:ok", "userId": chat["external_userid"]}))


@router.get("/sidebar/send")
def send(request: Request, corpid: str = "", message: str = "") -> Response:
    """Record a `sendChatMessage` (the JSON of the invoke's arguments) in the open chat."""
    fake = _fake(request)
    try:
        payload = json.loads(message)
    except ValueError:
        return _cors(JSONResponse({"err_msg": "sendChatMessage:fail invalid message"}))
    with fake.lock:
        try:
            table = _table(fake.corp(corpid))
        except FakeError as exc:
            return _cors(JSONResponse({"err_msg": f"sendChatMessage:fail {exc.message}"}))
        chat = table.get("current") or {}
        table["sent"].append({**chat, "message": payload, "at": time.time()})
    return _cors(JSONResponse({"err_msg": "sendChatMessage:ok"}))


_SHIM = r"""/* fake jWeixin/jwxwork shim served by the fake WeCom server (tests and the demo only). */
(function () {
  var base = %(base)s;
  var state = { corpid: null, configured: false, agent: false, ready: [], errors: [] };
  function get(path, params) {
    var q = Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
    return fetch(base + path + "?" + q, { credentials: "omit" }).then(function (r) { return r.json(); });
  }
  function fail(res, cb) { state.errors.forEach(function (f) { f(res); }); if (cb) cb(res); }
  var wx = {
    config: function (opts) {
      state.corpid = opts.appId;
      get("/sidebar/verify", { corpid: opts.appId, kind: "corp", url: location.href.split("#")[0],
        noncestr: opts.nonceStr, timestamp: opts.timestamp, signature: opts.signature }).then(function (res) {
        if (res.errcode === 0) { state.configured = true; state.ready.forEach(function (f) { f(); }); }
        else { fail({ errMsg: "config:fail " + res.errmsg }); }
      });
    },
    ready: function (fn) { if (state.configured) fn(); else state.ready.push(fn); },
    error: function (fn) { state.errors.push(fn); },
    agentConfig: function (opts) {
      get("/sidebar/verify", { corpid: opts.corpid, kind: "agent", agentid: opts.agentid,
        url: location.href.split("#")[0], noncestr: opts.nonceStr, timestamp: opts.timestamp,
        signature: opts.signature }).then(function (res) {
        if (res.errcode === 0) { state.agent = true; if (opts.success) opts.success({ errMsg: "agentConfig:ok" }); }
        else { if (opts.fail) opts.fail({ errMsg: "agentConfig:fail " + res.errmsg }); }
      });
    },
    invoke: function (name, args, cb) {
      if (!state.agent) { cb({ err_msg: name + ":fail no permission (agentConfig first)" }); return; }
      if (name === "getCurExternalContact") { get("/sidebar/current", { corpid: state.corpid }).then(cb); return; }
      if (name === "sendChatMessage") {
        get("/sidebar/send", { corpid: state.corpid, message: JSON.stringify(args) }).then(cb); return;
      }
      cb({ err_msg: name + ":fail not supported by the fake" });
    }
  };
  window.wx = wx;
  window.jWeixin = wx;
})();
"""


@router.get("/js/jwxwork.js")
def shim(request: Request) -> Response:
    """The `wx` shim; `base` is where this fake is served (its own origin and mount path)."""
    base = str(request.url).rsplit("/js/jwxwork.js", 1)[0]
    response = Response(_SHIM % {"base": json.dumps(base)}, media_type="application/javascript")
    return _cors(response)
