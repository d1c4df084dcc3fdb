"""Pushing callbacks to siyu the way WeCom does: the event as XML, AES-encrypted with the corp's
EncodingAESKey, signed with its token, POSTed to the callback URL with msg_signature, timestamp
and nonce in the query string. WeCom retries a push that got no "success" within 5 seconds, up
to three times; `times` reproduces that."""

from __future__ import annotations

import secrets
import time
from typing import Any
from xml.sax.saxutils import escape

import requests
import xmltodict
from wechatpy.enterprise.crypto import WeChatCrypto

from siyu.integrations.wecom.fake.state import FakeCorp


def event_xml(fields: dict[str, Any]) -> str:
    """`<xml>` with one element per field, strings in CDATA (numbers bare), in the given order."""
    parts = []
    for name, value in fields.items():
        if isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            text = escape(str(value)) if "]]>" in str(value) else str(value)
            parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def encrypt_for(
    corp: FakeCorp, xml: str, *, timestamp: int | None = None, nonce: str | None = None
) -> tuple[dict[str, str], bytes]:
    """(query params, body) of an encrypted push of `xml`."""
    crypto = WeChatCrypto(corp.callback_token, corp.callback_aes_key, corp.corp_id)
    nonce = nonce or secrets.token_hex(8)
    timestamp = timestamp or int(time.time())
    encrypted = crypto.encrypt_message(xml, nonce, timestamp)
    # wechatpy returns the reply envelope (<xml><Encrypt>…<MsgSignature>…); WeCom posts
    # <xml><ToUserName/><AgentID/><Encrypt/></xml> with the signature in the query string.
    envelope = xmltodict.parse(encrypted)["xml"]
    body = (
        f"<xml><ToUserName><![CDATA[{corp.corp_id}]]></ToUserName>"
        f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt>"
        f"<AgentID><![CDATA[{corp.agent_id}]]></AgentID></xml>"
    )
    params = {
        "msg_signature": envelope["MsgSignature"],
        "timestamp": str(envelope["TimeStamp"]),
        "nonce": envelope["Nonce"],
    }
    return params, body.encode()


def push_event(corp: FakeCorp, fields: dict[str, Any], *, times: int = 1, timeout: float = 5.0) -> list[int]:
    """Push one event (`ToUserName`, `CreateTime` and `MsgType` are added) `times` times with the
    same content, as WeCom's retries are; returns siyu's HTTP statuses (0: no answer)."""
    full: dict[str, Any] = {
        "ToUserName": corp.corp_id,
        "FromUserName": "sys",
        "CreateTime": int(corp.now()),
        "MsgType": "event",
    }
    full.update(fields)
    xml = event_xml(full)
    statuses: list[int] = []
    record: dict[str, Any] = {"fields": full, "statuses": statuses}
    corp.pushed.append(record)
    if not corp.callback_url and corp.transport is None:
        return statuses
    # The signature timestamp is the real time of sending (siyu refuses stale ones); CreateTime is
    # the event's time by the corp's clock.
    params, body = encrypt_for(corp, xml)
    for _ in range(times):
        if corp.transport is not None:
            statuses.append(corp.transport(params, body))
            continue
        assert corp.callback_url is not None
        try:
            response = requests.post(corp.callback_url, params=params, data=body, timeout=timeout)
            statuses.append(response.status_code)
        except requests.RequestException:
            statuses.append(0)
    return statuses
