"""The WeCom API client every area uses: wechatpy's enterprise client with a configurable base URL
(the fake server in tests and the demo), a token shared across processes (`tokens`), an outbound
rate limiter per corp and API (`ratelimit`), one retry after an expired token, and every failure
turned into a `WecomError` whose text never carries a secret or token.

    client = client_for(config, secret="contact")       # config: `siyu.integrations.wecom.config`
    info = client.call("GET", "externalcontact/get", params={"external_userid": uid})
    client.call("POST", "externalcontact/mark_tag", data={...})

wechatpy's API helpers (`client.external_contact.add_contact_way(...)`) work as well and go
through the same limiter; `call` is preferred for endpoints wechatpy lacks or shapes differently.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any

import requests
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from siyu.integrations.wecom.errors import RETRY_CODES, TOKEN_CODES, WecomError
from siyu.integrations.wecom.ratelimit import RateLimiter, rate_limiter
from siyu.integrations.wecom.tokens import token_store
from siyu.ops.collectors import MeteredSession

logger = logging.getLogger(__name__)

_SECRET_PARAMS = re.compile(r"(access_token|corpsecret|secret|code)=[^&\s'\"]+")
MAX_TOKEN_FETCHES = 2
"""Per client: wechatpy repeats a call after every refresh; a server that keeps rejecting fresh
tokens must not make it recurse for ever."""


def redact(text: str) -> str:
    """Drop tokens and secrets from a URL or message before it is logged or stored."""
    return _SECRET_PARAMS.sub(r"\1=***", text)


def _api_name(url_or_endpoint: str, base_url: str) -> str:
    path = url_or_endpoint[len(base_url) :] if url_or_endpoint.startswith(base_url) else url_or_endpoint
    return path.split("?", 1)[0].strip("/")


class WecomClient(WeChatClient):
    """See the module docstring. One client per (corp, secret); cheap to build."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        base_url: str,
        timeout: float = 10.0,
        tokens: SessionStorage,
        limiter: RateLimiter,
    ) -> None:
        super().__init__(corp_id, secret, session=tokens, timeout=timeout)
        self.API_BASE_URL = base_url if base_url.endswith("/") else base_url + "/"
        self._http = MeteredSession(self.API_BASE_URL)  # counts every HTTP request for /metrics
        self.limiter = limiter
        self._fetches = 0

    @property
    def access_token_key(self) -> str:
        digest = hashlib.sha256(f"{self.API_BASE_URL}|{self.corp_id}|{self.secret}".encode()).hexdigest()[:24]
        return f"wecom_{digest}_access_token"

    @property
    def access_token(self) -> str:
        token = self.session.get(self.access_token_key)
        return str(token) if token else str(self.fetch_access_token()["access_token"])

    def fetch_access_token(self) -> dict[str, Any]:
        self._fetches += 1
        if self._fetches > MAX_TOKEN_FETCHES:
            raise WeChatClientException(42001, "access token rejected after refresh", client=self)
        self.limiter.acquire(self.corp_id, "gettoken")
        response = self._http.get(
            self.API_BASE_URL + "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
            timeout=self.timeout,
        )
        try:
            response.raise_for_status()
        except requests.RequestException as exc:
            raise WeChatClientException(None, None, client=self, request=exc.request, response=exc.response) from exc
        result: dict[str, Any] = response.json()
        if int(result.get("errcode") or 0) != 0:
            raise WeChatClientException(int(result["errcode"]), result.get("errmsg"), client=self, response=response)
        expires_in = int(result.get("expires_in") or 7200)
        # Refresh a little early so a token never expires between the check and the call.
        self.session.set(self.access_token_key, result["access_token"], max(expires_in - 300, 60))
        self.expires_at = int(time.time()) + expires_in
        return result

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        api = _api_name(url_or_endpoint, kwargs.get("api_base_url", self.API_BASE_URL))
        self.limiter.acquire(self.corp_id, api)
        return super()._request(method, url_or_endpoint, **kwargs)

    def call(
        self, method: str, api: str, *, params: dict[str, Any] | None = None, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One API call; returns WeCom's JSON object, raises `WecomError` for anything else."""
        self._fetches = 0
        try:
            kwargs: dict[str, Any] = {"params": dict(params or {})}
            if data is not None:
                kwargs["data"] = data
            result = self._request(method.lower(), api, **kwargs)
        except WecomError:
            raise
        except Exception as exc:
            raise self.error(api, exc) from None
        if not isinstance(result, dict):
            raise WecomError(
                "WeCom answered something that is not JSON", api=api, reason="bad_response", retryable=True
            )
        return result

    def error(self, api: str, exc: BaseException) -> WecomError:
        """Map a transport or API failure to a `WecomError` (and back off after a 45009)."""
        if isinstance(exc, WecomError):
            return exc
        if isinstance(exc, requests.Timeout):
            return WecomError("WeCom did not answer in time", api=api, reason="timeout", retryable=True)
        if isinstance(exc, requests.ConnectionError):
            return WecomError("cannot reach WeCom", api=api, reason="connection_error", retryable=True)
        if isinstance(exc, WeChatClientException):
            if exc.errcode is None:
                status = exc.response.status_code if exc.response is not None else 0
                retry = status >= 500 or status in (0, 408, 429)
                return WecomError(f"HTTP {status}", api=api, reason=f"http_{status}", retryable=retry)
            code = int(exc.errcode)
            if code == 45009:
                self.limiter.penalize(self.corp_id, api)
            message = redact(str(exc.errmsg or code))[:300]
            retry = code in RETRY_CODES or code in TOKEN_CODES
            return WecomError(message, api=api, code=code, retryable=retry)
        if isinstance(exc, requests.RequestException | ValueError):
            return WecomError(redact(str(exc))[:300], api=api, reason="bad_response", retryable=True)
        logger.exception("unexpected error calling WeCom", extra={"api": api})
        return WecomError(type(exc).__name__, api=api, reason="client_error", retryable=False)


def build_client(
    corp_id: str,
    secret: str,
    *,
    base_url: str,
    broker_url: str | None = None,
    timeout: float = 10.0,
    limiter: RateLimiter | None = None,
    tokens: SessionStorage | None = None,
) -> WecomClient:
    """A client with the deployment's shared token store and limiter (see `tokens`, `ratelimit`)."""
    return WecomClient(
        corp_id,
        secret,
        base_url=base_url,
        timeout=timeout,
        tokens=tokens or token_store(broker_url),
        limiter=limiter or rate_limiter(broker_url),
    )
