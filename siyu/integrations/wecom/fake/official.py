"""The fake WeChat official account (公众号) under the fake server's `/oa/` prefix.

API (answers WeChat's shapes; errors as `{"errcode", "errmsg"}` with HTTP 200):
`/oa/cgi-bin/token`, `/oa/cgi-bin/qrcode/create` (QR_LIMIT_STR_SCENE / QR_STR_SCENE, scene_str
1–64 chars), `/oa/cgi-bin/showqrcode`, `/oa/cgi-bin/user/info` (40003 unknown openid),
`/oa/cgi-bin/message/template/send` (43004 not following, 40037 unknown template),
`/oa/sns/oauth2/access_token` (40029 bad or used code), `/oa/sns/userinfo` (48001 without the
userinfo scope), `/oa/connect/oauth2/authorize` (acts as the WeChat user: redirects with a code).

Sims (POST /oa/sim/<name>, JSON; also listed as `oa/<name>` in the fake console): `subscribe`
{appid, openid?, scene?, nickname?, unionid?}, `scan` {appid, openid, scene}, `unsubscribe`
{appid, openid}, `template_finish` {appid, msgid, status?}, `oauth_as` {appid, openid}.
State lives in `FakeWecom.accounts[appid]` (JSON-safe, saved with the demo state).
WeChat-side times (CreateTime, token and code expiries) come from the module's `now()`, which tests
may monkeypatch to follow siyu's frozen clock; push signatures use the real time (siyu's replay
window does). `user/info` answers like WeChat since December 2021: no nickname or avatar.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import requests
import xmltodict
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from wechatpy.crypto import WeChatCrypto

from siyu.integrations.wecom.fake.app import sim
from siyu.integrations.wecom.fake.push import event_xml
from siyu.integrations.wecom.fake.state import FakeError, FakeWecom

router = APIRouter(prefix="/oa")
TOKEN_TTL_S = 7200
Transport = Callable[[dict[str, str], bytes], int]
_transports: dict[tuple[int, str], Transport] = {}
USER_INFO_HIDDEN = frozenset({"nickname", "headimgurl", "sex", "city", "province", "country"})


def now() -> float:
    """WeChat's clock for the fake (epoch seconds); monkeypatch in tests."""
    return time.time()


def add_account(
    fake: FakeWecom,
    appid: str,
    *,
    secret: str,
    token: str = "",
    aes_key: str = "",
    callback_url: str | None = None,
    templates: list[str] | None = None,
) -> dict[str, Any]:
    """Host an official account on the fake (replacing one with the same appid)."""
    with fake.lock:
        account: dict[str, Any] = {
            "appid": appid,
            "original_id": "gh_" + hashlib.sha1(appid.encode()).hexdigest()[:12],
            "secret": secret,
            "token": token,
            "aes_key": aes_key,
            "callback_url": callback_url,
            "templates": list(templates or []),
            "users": {},
            "qrcodes": {},
            "tokens": {},
            "codes": {},
            "sns_tokens": {},
            "sent": [],
            "pushed": [],
            "failures": {},
            "current_user": None,
            "seq": 0,
        }
        fake.accounts[appid] = account
        return account


def set_transport(fake: FakeWecom, appid: str, transport: Transport | None) -> None:
    """Deliver this account's pushes in-process (`(query params, body) -> HTTP status`) instead of over HTTP."""
    if transport is None:
        _transports.pop((id(fake), appid), None)
    else:
        _transports[(id(fake), appid)] = transport


def fail_next(fake: FakeWecom, appid: str, api: str, errcode: int, times: int = 1) -> None:
    """Script the next `times` calls of `api` (e.g. "message/template/send") to answer `errcode`."""
    with fake.lock:
        fake.accounts[appid]["failures"].setdefault(api, []).extend([errcode] * times)


def _next(account: dict[str, Any], prefix: str) -> str:
    account["seq"] += 1
    return f"{prefix}{account['seq']:06d}{secrets.token_hex(4)}"


def _account(fake: FakeWecom, appid: str) -> dict[str, Any]:
    account = fake.accounts.get(appid)
    if account is None:
        raise FakeError(40013, "invalid appid")
    return account


def _by_token(fake: FakeWecom, token: str | None) -> dict[str, Any]:
    if not token:
        raise FakeError(41001, "access_token missing")
    for account in fake.accounts.values():
        expires = account["tokens"].get(token)
        if expires is not None:
            if expires <= now():
                raise FakeError(42001, "access_token expired")
            return account
    raise FakeError(40001, "invalid credential, access_token is invalid or not latest")


def expire_tokens(fake: FakeWecom, appid: str) -> None:
    """Every access token of the account expires now (the next call answers 42001)."""
    with fake.lock:
        tokens = fake.accounts[appid]["tokens"]
        for token in tokens:
            tokens[token] = 0.0


def _ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body)


def _err(exc: FakeError) -> JSONResponse:
    return JSONResponse({"errcode": exc.code, "errmsg": exc.message})


def _user(account: dict[str, Any], openid: str | None = None, **values: Any) -> dict[str, Any]:
    openid = openid or "o" + secrets.token_urlsafe(20)[:27]
    user = account["users"].setdefault(
        openid, {"openid": openid, "subscribe": 0, "nickname": f"微信用户{len(account['users']) + 1}"}
    )
    for key, value in values.items():
        if value not in (None, ""):
            user[key] = value
    return user


# ---- API ----------------------------------------------------------------------------------------


@router.get("/cgi-bin/token")
def token(request: Request) -> JSONResponse:
    fake: FakeWecom = request.app.state.fake
    q = request.query_params
    with fake.lock:
        try:
            account = _account(fake, q.get("appid", ""))
            if q.get("grant_type") != "client_credential":
                raise FakeError(40002, "invalid grant_type")
            if q.get("secret") != account["secret"]:
                raise FakeError(40125, "invalid appsecret")
            value = "oa-" + secrets.token_urlsafe(24)
            account["tokens"][value] = now() + TOKEN_TTL_S
            return _ok({"access_token": value, "expires_in": TOKEN_TTL_S})
        except FakeError as exc:
            return _err(exc)


def _authed(request: Request, api: str) -> dict[str, Any]:
    fake: FakeWecom = request.app.state.fake
    account = _by_token(fake, request.query_params.get("access_token"))
    scripted = account["failures"].get(api)
    if scripted:
        raise FakeError(scripted.pop(0), "scripted failure")
    return account


@router.post("/cgi-bin/qrcode/create")
async def qrcode_create(request: Request) -> JSONResponse:
    fake: FakeWecom = request.app.state.fake
    body = await request.json()
    with fake.lock:
        try:
            account = _authed(request, "qrcode/create")
            action = body.get("action_name")
            if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"):
                raise FakeError(40097, "invalid args: action_name")
            scene = (body.get("action_info") or {}).get("scene") or {}
            if "STR" in action:
                value = str(scene.get("scene_str") or "")
                if not 1 <= len(value) <= 64:
                    raise FakeError(40097, "invalid args: scene_str must be 1-64 characters")
            else:
                scene_id = scene.get("scene_id")
                top = 100_000 if action == "QR_LIMIT_SCENE" else 2**32 - 1
                if isinstance(scene_id, bool) or not isinstance(scene_id, int) or not 1 <= scene_id <= top:
                    raise FakeError(40097, f"invalid args: scene_id must be 1-{top}")
                value = str(scene_id)
            ticket = "gQ" + hashlib.sha256(f"{account['appid']}|{value}|{action}".encode()).hexdigest()[:40]
            url = f"http://weixin.qq.com/q/{ticket[2:24]}"
            permanent = "LIMIT" in action
            expire = None if permanent else int(body.get("expire_seconds") or 60)
            account["qrcodes"][ticket] = {"scene": value, "url": url, "permanent": permanent}
            answer: dict[str, Any] = {"ticket": ticket, "url": url}
            if expire is not None:
                answer["expire_seconds"] = min(expire, 2_592_000)
            return _ok(answer)
        except FakeError as exc:
            return _err(exc)


@router.get("/cgi-bin/showqrcode")
def showqrcode(request: Request) -> Response:
    fake: FakeWecom = request.app.state.fake
    with fake.lock:
        for account in fake.accounts.values():
            code = account["qrcodes"].get(request.query_params.get("ticket", ""))
            if code is not None:
                return Response(code["url"], media_type="text/plain")
    return Response("ticket not found", status_code=404, media_type="text/plain")


@router.get("/cgi-bin/user/info")
def user_info(request: Request) -> JSONResponse:
    fake: FakeWecom = request.app.state.fake
    with fake.lock:
        try:
            account = _authed(request, "user/info")
            user = account["users"].get(request.query_params.get("openid", ""))
            if user is None:
                raise FakeError(40003, "invalid openid")
            if not user.get("subscribe"):
                return _ok({"subscribe": 0, "openid": user["openid"]})
            shown = {k: v for k, v in user.items() if k not in USER_INFO_HIDDEN}
            answer = {"language": "zh_CN", "subscribe_scene": "ADD_SCENE_QR_CODE", "tagid_list": [], **shown}
            return _ok(answer)
        except FakeError as exc:
            return _err(exc)


@router.post("/cgi-bin/message/template/send")
async def template_send(request: Request) -> JSONResponse:
    fake: FakeWecom = request.app.state.fake
    body = await request.json()
    with fake.lock:
        try:
            account = _authed(request, "message/template/send")
            user = account["users"].get(str(body.get("touser") or ""))
            if user is None:
                raise FakeError(40003, "invalid openid")
            template_id = str(body.get("template_id") or "")
            if not template_id or (account["templates"] and template_id not in account["templates"]):
                raise FakeError(40037, "invalid template_id")
            if not user.get("subscribe"):
                raise FakeError(43004, "require subscribe")
            if not isinstance(body.get("data"), dict):
                raise FakeError(47001, "data format error")
            msgid = int(now() * 1000) % 10**12 * 100 + account["seq"] % 100
            account["seq"] += 1
            account["sent"].append({"msgid": msgid, **body})
            return _ok({"errcode": 0, "errmsg": "ok", "msgid": msgid})
        except FakeError as exc:
            return _err(exc)


@router.get("/connect/oauth2/authorize")
def authorize(request: Request) -> Response:
    """The WeChat user (the account's `current_user`, else a new one) agrees; back with a code."""
    fake: FakeWecom = request.app.state.fake
    q = request.query_params
    with fake.lock:
        account = fake.accounts.get(q.get("appid", ""))
        if account is None or q.get("response_type") != "code" or not q.get("redirect_uri"):
            return Response("invalid appid or request", status_code=400, media_type="text/plain")
        scope = q.get("scope", "snsapi_base")
        if scope not in ("snsapi_base", "snsapi_userinfo"):
            return Response("invalid scope", status_code=400, media_type="text/plain")
        openid = q.get("as_openid") or account.get("current_user")
        user = _user(account, openid)
        code = secrets.token_urlsafe(16)
        account["codes"][code] = {"openid": user["openid"], "scope": scope, "expires": now() + 300}
    target = q["redirect_uri"]
    sep = "&" if "?" in target else "?"
    return RedirectResponse(target + sep + urlencode({"code": code, "state": q.get("state", "")}), status_code=302)


@router.get("/sns/oauth2/access_token")
def sns_access_token(request: Request) -> JSONResponse:
    fake: FakeWecom = request.app.state.fake
    q = request.query_params
    with fake.lock:
        try:
            account = _account(fake, q.get("appid", ""))
            if q.get("secret") != account["secret"]:
                raise FakeError(40125, "invalid appsecret")
            grant = account["codes"].pop(q.get("code", ""), None)
            if grant is None or grant["expires"] <= now():
                raise FakeError(40029, "invalid code")
            value = "sns-" + secrets.token_urlsafe(20)
            account["sns_tokens"][value] = {"openid": grant["openid"], "scope": grant["scope"]}
            user = account["users"][grant["openid"]]
            answer = {
                "access_token": value,
                "expires_in": 7200,
                "refresh_token": "r-" + secrets.token_urlsafe(12),
                "openid": grant["openid"],
                "scope": grant["scope"],
            }
            if user.get("unionid"):
                answer["unionid"] = user["unionid"]
            return _ok(answer)
        except FakeError as exc:
            return _err(exc)


@router.get("/sns/userinfo")
def sns_userinfo(request: Request) -> JSONResponse:
    fake: FakeWecom = request.app.state.fake
    q = request.query_params
    with fake.lock:
        for account in fake.accounts.values():
            grant = account["sns_tokens"].get(q.get("access_token", ""))
            if grant is None:
                continue
            if grant["openid"] != q.get("openid"):
                return _err(FakeError(40003, "invalid openid"))
            if grant["scope"] != "snsapi_userinfo":
                return _err(FakeError(48001, "api unauthorized"))
            user = account["users"][grant["openid"]]
            info = {
                "openid": user["openid"],
                "nickname": user.get("nickname", ""),
                "sex": 0,
                "province": "",
                "city": "",
                "country": "",
                "headimgurl": user.get("headimgurl", ""),
                "privilege": [],
            }
            if user.get("unionid"):
                info["unionid"] = user["unionid"]
            return _ok(info)
    return _err(FakeError(40001, "invalid credential, access_token is invalid or not latest"))


# ---- pushes and sims ----------------------------------------------------------------------------


def push(fake: FakeWecom, appid: str, fields: dict[str, Any], *, times: int = 1) -> list[int]:
    """Push one event to siyu as WeChat does (safe mode when the account has an AES key; plain
    otherwise), `times` times with the same content; returns siyu's HTTP statuses (0: no answer)."""
    account = fake.accounts[appid]
    full: dict[str, Any] = {"ToUserName": account["original_id"], "CreateTime": int(now()), "MsgType": "event"}
    full.update(fields)
    xml = event_xml(full)
    statuses: list[int] = []
    account["pushed"].append({"fields": full, "statuses": statuses})
    transport = _transports.get((id(fake), appid))
    if not account.get("callback_url") and transport is None:
        return statuses
    nonce, timestamp = secrets.token_hex(8), str(int(time.time()))  # signed with the real time
    signature = hashlib.sha1("".join(sorted([account["token"], timestamp, nonce])).encode()).hexdigest()
    params = {"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": str(full.get("FromUserName"))}
    body = xml.encode()
    if account.get("aes_key"):
        crypto = WeChatCrypto(account["token"], account["aes_key"], appid)
        envelope = xmltodict.parse(crypto.encrypt_message(xml, nonce, timestamp))["xml"]
        params.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
        body = (
            f"<xml><ToUserName><![CDATA[{account['original_id']}]]></ToUserName>"
            f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
        ).encode()
    for _ in range(times):
        if transport is not None:
            statuses.append(transport(params, body))
            continue
        try:
            statuses.append(requests.post(account["callback_url"], params=params, data=body, timeout=5).status_code)
        except requests.RequestException:
            statuses.append(0)
    return statuses


def simulate_subscribe(
    fake: FakeWecom,
    appid: str,
    *,
    openid: str | None = None,
    scene: str | None = None,
    nickname: str | None = None,
    unionid: str | None = None,
    times: int = 1,
) -> dict[str, Any]:
    """A WeChat user follows the account (by scanning the QR of `scene`, when given)."""
    with fake.lock:
        account = _account(fake, appid)
        user = _user(account, openid, nickname=nickname, unionid=unionid)
        user["subscribe"] = 1
        user["subscribe_time"] = int(now())
        user["qr_scene_str"] = scene or ""
        fields: dict[str, Any] = {"FromUserName": user["openid"], "Event": "subscribe"}
        if scene:
            fields["EventKey"] = "qrscene_" + scene
            fields["Ticket"] = _ticket_of(account, scene)
    statuses = push(fake, appid, fields, times=times)
    return {"openid": user["openid"], "statuses": statuses}


def simulate_scan(fake: FakeWecom, appid: str, *, openid: str, scene: str, times: int = 1) -> dict[str, Any]:
    """A follower scans a parametric QR again (WeChat pushes SCAN, without the qrscene_ prefix)."""
    with fake.lock:
        account = _account(fake, appid)
        user = _user(account, openid)
        user["subscribe"] = 1
        fields = {"FromUserName": openid, "Event": "SCAN", "EventKey": scene, "Ticket": _ticket_of(account, scene)}
    return {"openid": openid, "statuses": push(fake, appid, fields, times=times)}


def simulate_unsubscribe(fake: FakeWecom, appid: str, *, openid: str, times: int = 1) -> dict[str, Any]:
    """A follower unfollows the account."""
    with fake.lock:
        user = _user(_account(fake, appid), openid)
        user["subscribe"] = 0
        fields = {"FromUserName": openid, "Event": "unsubscribe", "EventKey": ""}
    return {"openid": openid, "statuses": push(fake, appid, fields, times=times)}


def simulate_template_finish(
    fake: FakeWecom, appid: str, *, msgid: int | str, status: str = "success"
) -> dict[str, Any]:
    """WeChat reports a template message's fate: "success", "failed:user block", "failed: system failed"."""
    with fake.lock:
        account = _account(fake, appid)
        sent = next((s for s in account["sent"] if str(s["msgid"]) == str(msgid)), None)
        if sent is None:
            raise FakeError(40003, "unknown msgid")
        fields = {
            "FromUserName": sent["touser"],
            "Event": "TEMPLATESENDJOBFINISH",
            "MsgID": int(msgid),
            "Status": status,
        }
    return {"statuses": push(fake, appid, fields)}


def _ticket_of(account: dict[str, Any], scene: str) -> str:
    return next((t for t, q in account["qrcodes"].items() if q["scene"] == scene), "")


def _need(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value in (None, ""):
        raise FakeError(41035, f"missing {key}")
    return str(value)


def _sim_subscribe(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_subscribe(
        fake,
        str(body.get("appid") or ""),
        openid=body.get("openid") or None,
        scene=body.get("scene") or None,
        nickname=body.get("nickname") or None,
        unionid=body.get("unionid") or None,
    )


def _sim_scan(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_scan(fake, str(body.get("appid") or ""), openid=_need(body, "openid"), scene=_need(body, "scene"))


def _sim_unsubscribe(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_unsubscribe(fake, str(body.get("appid") or ""), openid=_need(body, "openid"))


def _sim_template_finish(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    return simulate_template_finish(
        fake, str(body.get("appid") or ""), msgid=_need(body, "msgid"), status=str(body.get("status") or "success")
    )


def _sim_oauth_as(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    with fake.lock:
        account = _account(fake, str(body.get("appid") or ""))
        user = _user(account, body.get("openid") or None, unionid=body.get("unionid") or None)
        account["current_user"] = user["openid"]
    return {"openid": user["openid"]}


SIMS: dict[str, Callable[[FakeWecom, dict[str, Any]], dict[str, Any]]] = {
    "subscribe": _sim_subscribe,
    "scan": _sim_scan,
    "unsubscribe": _sim_unsubscribe,
    "template_finish": _sim_template_finish,
    "oauth_as": _sim_oauth_as,
}
for _name, _fn in SIMS.items():
    sim("oa/" + _name)(_fn)


@router.post("/sim/{name}")
async def simulate(name: str, request: Request) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    handler = SIMS.get(name)
    if handler is None:
        return JSONResponse({"error": f"no simulation {name}"}, status_code=404)
    try:
        body = await request.json()
    except ValueError:
        body = dict(await request.form())
    try:
        result = await run_in_threadpool(handler, request.app.state.fake, body if isinstance(body, dict) else {})
    except FakeError as exc:
        return JSONResponse({"error": exc.message, "errcode": exc.code}, status_code=400)
    except KeyError as exc:
        return JSONResponse({"error": f"missing {exc.args[0]}"}, status_code=400)
    return JSONResponse(result)
