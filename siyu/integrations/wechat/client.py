"""The official-account API client: `cgi-bin/token` with the token shared across processes (the
WeCom token store), one retry after an expired token, and every failure turned into a
`WecomError` (same shape as WeCom's: errcode, reason, retryable) whose text carries no secret.

    client = client_for(config)
    client.call("POST", "qrcode/create", data={...})
    client.call("GET", "user/info", params={"openid": openid, "lang": "zh_CN"})
"""

from __future__ import annotations

import hashlib
from typing import Any

import requests
from wechatpy.session import SessionStorage

from siyu.db import get_database
from siyu.integrations.wechat.config import WechatConfig
from siyu.integrations.wecom.client import redact
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.tokens import token_store

RETRY_CODES = frozenset({-1, 45009, 45011})
TOKEN_CODES = frozenset({40001, 40014, 42001})


class OfficialClient:
    """See the module docstring. Cheap to build; one per call site is fine."""

    def __init__(self, app_id: str, secret: str, *, base_url: str, tokens: SessionStorage, timeout: float = 10.0):
        self.app_id = app_id
        self.secret = secret
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.tokens = tokens
        self.timeout = timeout
        self.http = requests.Session()

    @property
    def token_key(self) -> str:
        digest = hashlib.sha256(f"{self.base_url}|{self.app_id}|{self.secret}".encode()).hexdigest()[:24]
        return f"wechat_{digest}_access_token"

    def _token(self, *, fresh: bool = False) -> str:
        if not fresh:
            cached = self.tokens.get(self.token_key)
            if cached:
                return str(cached)
        result = self._send(
            "GET",
            "token",
            params={"grant_type": "client_credential", "appid": self.app_id, "secret": self.secret},
            data=None,
        )
        expires_in = int(result.get("expires_in") or 7200)
        self.tokens.set(self.token_key, result["access_token"], max(expires_in - 300, 60))
        return str(result["access_token"])

    def _send(self, method: str, api: str, *, params: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
        try:
            response = self.http.request(method, self.base_url + api, params=params, json=data, timeout=self.timeout)
        except requests.Timeout:
            raise WecomError("WeChat did not answer in time", api=api, reason="timeout", retryable=True) from None
        except requests.RequestException as exc:
            raise WecomError(redact(str(exc))[:300], api=api, reason="connection_error", retryable=True) from None
        if response.status_code != 200:
            status = response.status_code
            retry = status >= 500 or status in (408, 429)
            raise WecomError(f"HTTP {status}", api=api, reason=f"http_{status}", retryable=retry)
        try:
            result = response.json()
        except ValueError:
            raise WecomError(
                "WeChat answered something that is not JSON", api=api, reason="bad_response", retryable=True
            ) from None
        if not isinstance(result, dict):
            raise WecomError(
                "WeChat answered something that is not JSON", api=api, reason="bad_response", retryable=True
            )
        code = int(result.get("errcode") or 0)
        if code:
            message = redact(str(result.get("errmsg") or code))[:300]
            raise WecomError(
                message,
                api=api,
                code=code,
                reason=f"wechat_{code}",
                retryable=code in RETRY_CODES or code in TOKEN_CODES,
            )
        return result

    def call(
        self, method: str, api: str, *, params: dict[str, Any] | None = None, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One API call under `cgi-bin/`; returns the JSON object, raises `WecomError` otherwise."""
        query = dict(params or {})
        query["access_token"] = self._token()
        try:
            return self._send(method, api, params=query, data=data)
        except WecomError as exc:
            if exc.code not in TOKEN_CODES:
                raise
        self.tokens.delete(self.token_key)
        query["access_token"] = self._token(fresh=True)
        return self._send(method, api, params=query, data=data)


def client_for(config: WechatConfig, *, tokens: SessionStorage | None = None) -> OfficialClient:
    """A client for the account (`NotConfigured` without an app secret)."""
    if not config.app_secret:
        raise NotConfigured("the official account's app secret is not set")
    if tokens is None:
        tokens = token_store(get_database().settings.broker_url)
    return OfficialClient(config.app_id, config.app_secret, base_url=config.api_base_url, tokens=tokens)
