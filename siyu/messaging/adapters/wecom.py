"""WeCom (企业微信) customer and group mass messages through wechatpy's enterprise client.

A mass message is a *task* for a staff member: `externalcontact/add_msg_template` creates it and
the staff member confirms it in the WeCom app; only then do customers receive it. So a send here
means "task created" (Delivery `sent`), and `siyu.messaging.tasks` polls
`externalcontact/get_groupmsg_send_result` to learn per customer whether it arrived.

Group posts (for group calendars)::

    send_group_post(account, credentials, staff_userid, message, clock, *, chat_ids=None) -> GroupPost

`account` is a `wecom_group` (or `wecom_customer`) ChannelAccount, `credentials` its decrypted
credentials ({"corp_id", "secret"}), `message` a rendered message as `content.render` builds it
({"kind", "text", "link"?, "title"?, "description"?, "media_url"?, "miniprogram"?}) and `chat_ids`
the group chat ids to post in (None: every group the staff member owns). It never raises for a
provider error: `GroupPost.kind` is an `OutcomeKind` (SENT, RETRY or FAILED), `GroupPost.msgid`
the WeCom msgid on success, `reason`/`error` the short code and text otherwise.

Settings: `api_base_url` (default https://qyapi.weixin.qq.com/cgi-bin/, tests point it at a fake
server), `timeout_s` (default 10). Credentials: `corp_id`, `secret` (the customer-contact secret or
a self-built app's secret with customer-contact rights).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from wechatpy.exceptions import WeChatClientException

from siyu.integrations.wecom.client import WecomClient, build_client
from siyu.integrations.wecom.errors import WecomError
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters.base import (
    Capabilities,
    Needs,
    Outcome,
    OutcomeKind,
    Outgoing,
    SendContext,
    redact,
    unexpected_error,
)
from siyu.models import ChannelAccount, ConsentChannel, ContentKind

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
MAX_RECIPIENTS = 10_000
"""`add_msg_template` takes at most 10,000 external user ids per call."""
RETRY_CODES = frozenset({-1, 45009, 45033})
"""System busy, API frequency limit, concurrency limit: try again later."""
TOKEN_CODES = frozenset({40001, 40014, 42001})
"""Bad or expired access token: wechatpy fetches a new one and repeats the call once."""
RESULT_STATUS = {0: "pending", 1: "delivered", 2: "not_friend", 3: "platform_capped"}
"""`get_groupmsg_send_result` status: 0 not yet sent by the staff member, 1 sent, 2 not a friend
(any more), 3 the customer already received another mass message (the platform's cap)."""
_MAX_TOKEN_FETCHES = 2
_MEDIA_LIMIT = 2 * 1024 * 1024


def _client(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> WecomClient:
    """The shared WeCom client (`siyu.integrations.wecom.client.build_client`): the deployment's
    token store and outbound rate limiter, so mass messages and the integration's jobs share one
    access token and one budget per corp."""
    return build_client(
        str(credentials.get("corp_id") or ""),
        str(credentials.get("secret") or ""),
        base_url=str(settings.get("api_base_url") or DEFAULT_BASE_URL),
        timeout=float(settings.get("timeout_s") or 10),
        broker_url=_broker_url(),
    )


def _broker_url() -> str | None:
    try:
        from siyu.db import get_database

        return get_database().settings.broker_url
    except Exception:  # no database configured (a bare adapter in a script): the process's memory
        return None


@dataclass(frozen=True)
class _Failure:
    kind: OutcomeKind
    reason: str
    error: str


def _text(exc: BaseException) -> str:
    # requests puts the whole URL in its messages, and wechatpy's URLs carry `access_token=` (and
    # `corpsecret=` when fetching one).
    return redact(str(exc))[:500]


def _classify(exc: Exception) -> _Failure:
    """Map a transport or API error to RETRY (try later) or FAILED (this will not work)."""
    if isinstance(exc, WecomError):  # siyu's own limiter held the call back (or the client mapped it)
        kind = OutcomeKind.RETRY if exc.retryable else OutcomeKind.FAILED
        return _Failure(kind, exc.reason[:30], redact(str(exc))[:500])
    if isinstance(exc, requests.Timeout):
        return _Failure(OutcomeKind.RETRY, "timeout", _text(exc))
    if isinstance(exc, requests.ConnectionError):
        return _Failure(OutcomeKind.RETRY, "connection_error", _text(exc))
    if isinstance(exc, WeChatClientException):
        if exc.errcode is None:
            status = exc.response.status_code if exc.response is not None else 0
            kind = OutcomeKind.RETRY if status >= 500 or status in (0, 408, 429) else OutcomeKind.FAILED
            return _Failure(kind, f"http_{status}", f"HTTP {status}")
        code = int(exc.errcode)
        kind = OutcomeKind.RETRY if code in RETRY_CODES else OutcomeKind.FAILED
        return _Failure(kind, f"wecom_{code}"[:30], redact(f"{code}: {exc.errmsg}")[:500])
    if isinstance(exc, urllib.error.HTTPError):  # fetching an image to upload
        kind = OutcomeKind.RETRY if exc.code >= 500 or exc.code in (408, 429) else OutcomeKind.FAILED
        return _Failure(kind, f"media_http_{exc.code}", _text(exc))
    if isinstance(exc, requests.RequestException | ValueError | OSError):
        return _Failure(OutcomeKind.RETRY, "bad_response", _text(exc))
    # Anything else is a bug on our side; failing (not retrying) never sends a message twice.
    return _Failure(OutcomeKind.FAILED, "adapter_error", unexpected_error(logger, exc))


def _upload_image(client: WecomClient, url: str, cache: dict[str, str]) -> str:
    """A temporary media id for an image URL (mini-program covers must be uploaded media)."""
    if url not in cache:
        with urllib.request.urlopen(url, timeout=client.timeout) as response:
            data = response.read(_MEDIA_LIMIT + 1)
        if len(data) > _MEDIA_LIMIT:
            raise ValueError(f"image larger than 2 MB: {url}")
        name = url.rsplit("/", 1)[-1].split("?")[0] or "cover.jpg"
        result = client.post("media/upload", params={"type": "image"}, files={"media": (name, data)})
        cache[url] = str(result["media_id"])
    return cache[url]


def message_body(client: WecomClient, message: Mapping[str, Any], media: dict[str, str]) -> dict[str, Any]:
    """The text and attachment of `add_msg_template` for a rendered message."""
    body: dict[str, Any] = {}
    if message.get("text"):
        body["text"] = {"content": str(message["text"])}
    kind = message.get("kind", ContentKind.TEXT)
    attachment: dict[str, Any] | None = None
    if kind == ContentKind.IMAGE and message.get("media_url"):
        attachment = {"msgtype": "image", "image": {"pic_url": message["media_url"]}}
    elif kind == ContentKind.LINK and message.get("link"):
        link = {"title": message.get("title") or message.get("text", "")[:40], "url": message["link"]}
        if message.get("media_url"):
            link["picurl"] = message["media_url"]
        if message.get("description"):
            link["desc"] = message["description"]
        attachment = {"msgtype": "link", "link": link}
    elif kind == ContentKind.MINIPROGRAM and message.get("miniprogram"):
        program = message["miniprogram"]
        card: dict[str, Any] = {
            "title": message.get("title") or "",
            "appid": program.get("appid", ""),
            "page": program.get("page", ""),
        }
        if message.get("media_url"):
            card["pic_media_id"] = _upload_image(client, str(message["media_url"]), media)
        attachment = {"msgtype": "miniprogram", "miniprogram": card}
    if attachment is not None:
        body["attachments"] = [attachment]
    return body


_MESSAGE_FIELDS = ("kind", "text", "link", "title", "description", "media_url", "miniprogram")
"""What `message_body` reads. The rest of a rendered message (`unsubscribe_url`, `subject`,
`params`) is per recipient or unused here, and must not split a mass message."""


def _message_key(message: Mapping[str, Any]) -> str:
    """Recipients of one staff member whose messages have the same `_MESSAGE_FIELDS` share one call
    (one task for the staff member to confirm); personalised text makes one call per recipient."""
    fields = {k: message.get(k) for k in _MESSAGE_FIELDS}
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)


def _check(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> WecomClient:
    base_url = str(settings.get("api_base_url") or DEFAULT_BASE_URL)
    if not base_url.startswith(("http://", "https://")):
        raise InvalidInput("api_base_url must be an http(s) URL", details={"field": "settings.api_base_url"})
    for name in ("corp_id", "secret"):
        if not str(credentials.get(name) or "").strip():
            raise InvalidInput(f"{name} is required", details={"field": f"credentials.{name}"})
    try:
        client = _client(settings, credentials)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("timeout_s must be a number", details={"field": "settings.timeout_s"}) from exc
    try:
        client.fetch_access_token()
    except WeChatClientException as exc:
        if exc.errcode in (40013, 40089):  # invalid corp id
            field, text = "credentials.corp_id", f"WeCom rejected the corp id ({exc.errcode})"
        elif exc.errcode is not None:
            field, text = "credentials.secret", f"WeCom rejected the secret ({exc.errcode})"
        else:
            field, text = "settings.api_base_url", "WeCom did not answer; check api_base_url"
        # Not chained: an HTTP error's text names the URL, secret included.
        raise InvalidInput(text, details={"field": field}) from None
    except (requests.RequestException, ValueError) as exc:
        # Not chained: the cause's text and request carry the secret in the URL.
        raise InvalidInput(f"WeCom did not answer: {_text(exc)}", details={"field": "settings.api_base_url"}) from None
    return client


class WecomCustomerAdapter:
    """Customer mass messages (群发助手): one `add_msg_template` per staff member and message."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.capabilities = Capabilities(
            max_batch=MAX_RECIPIENTS,
            content_kinds=frozenset(ContentKind),
            needs=Needs.WECOM_FRIEND,
            consent_channel=ConsentChannel.WECOM,
        )

    def check(self, context: SendContext) -> None:
        _check(self.settings, context.credentials)

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        try:
            client = _client(self.settings, context.credentials)
        except (TypeError, ValueError) as exc:  # settings the form did not check (timeout_s)
            error = _text(exc)
            return [Outcome(i.delivery_id, OutcomeKind.FAILED, reason="bad_settings", error=error) for i in batch]
        media: dict[str, str] = {}
        outcomes: list[Outcome] = []
        groups: dict[tuple[str, str], list[Outgoing]] = defaultdict(list)
        for item in batch:
            if not item.staff_userid or not item.address:
                outcomes.append(
                    Outcome(item.delivery_id, OutcomeKind.FAILED, reason="no_wecom_sender", error="no staff or user id")
                )
                continue
            groups[(item.staff_userid, _message_key(item.message))].append(item)
        for (sender, _key), items in groups.items():
            for start in range(0, len(items), MAX_RECIPIENTS):
                outcomes += self._send_one(client, sender, items[start : start + MAX_RECIPIENTS], media)
        return outcomes

    def _send_one(
        self, client: WecomClient, sender: str, items: list[Outgoing], media: dict[str, str]
    ) -> list[Outcome]:
        try:
            template = {
                "chat_type": "single",
                "external_userid": [i.address for i in items],
                "sender": sender,
                **message_body(client, items[0].message, media),
            }
            result = client.post("externalcontact/add_msg_template", data=template)
        except Exception as exc:
            failure = _classify(exc)
            return [Outcome(i.delivery_id, failure.kind, reason=failure.reason, error=failure.error) for i in items]
        if not isinstance(result, dict):
            # The task may exist, but without a msgid its results cannot be polled; failing (not
            # retrying) never creates a second task.
            error = "WeCom answered without a msgid"
            return [Outcome(i.delivery_id, OutcomeKind.FAILED, reason="bad_response", error=error) for i in items]
        msgid = str(result.get("msgid") or "")
        fail_list = result.get("fail_list")
        refused = {str(x) for x in fail_list} if isinstance(fail_list, list) else set()
        return [
            Outcome(i.delivery_id, OutcomeKind.FAILED, reason="wecom_fail_list", error="WeCom cannot send to this user")
            if i.address in refused
            else Outcome(i.delivery_id, OutcomeKind.SENT, provider_message_id=f"{msgid}:{i.address}")
            for i in items
        ]


@dataclass(frozen=True)
class GroupPost:
    """What became of a group post: SENT with the msgid, or RETRY/FAILED with a reason."""

    kind: OutcomeKind
    msgid: str | None = None
    reason: str | None = None
    error: str | None = None


def post_to_groups(
    settings: Mapping[str, Any],
    credentials: Mapping[str, Any],
    staff_userid: str,
    message: Mapping[str, Any],
    *,
    chat_ids: Sequence[str] | None = None,
) -> GroupPost:
    """One `add_msg_template` with chat_type "group" from one staff member."""
    try:
        client = _client(settings, credentials)
        template: dict[str, Any] = {"chat_type": "group", "sender": staff_userid, **message_body(client, message, {})}
        if chat_ids:
            template["chat_id_list"] = list(chat_ids)
        result = client.post("externalcontact/add_msg_template", data=template)
    except Exception as exc:
        failure = _classify(exc)
        return GroupPost(failure.kind, reason=failure.reason, error=failure.error)
    msgid = str(result.get("msgid") or "") if isinstance(result, dict) else ""
    return GroupPost(OutcomeKind.SENT, msgid=msgid)


def send_group_post(
    account: ChannelAccount,
    credentials: Mapping[str, Any],
    staff_userid: str,
    message: Mapping[str, Any],
    clock: Clock,
    *,
    chat_ids: Sequence[str] | None = None,
) -> GroupPost:
    """Post `message` to the community groups of `staff_userid` (see the module docstring)."""
    del clock  # the post is a task for the staff member; WeCom stamps the time it goes out
    return post_to_groups(dict(account.settings or {}), credentials, staff_userid, message, chat_ids=chat_ids)


class WecomGroupAdapter:
    """Customer-group mass messages: `Outgoing.address` is a group chat id (or None for all the
    sender's groups); items with the same sender and message share one call."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.capabilities = Capabilities(
            max_batch=2000,
            content_kinds=frozenset(ContentKind),
            needs=Needs.NOTHING,
            consent_channel=None,
            group_messages=True,
        )

    def check(self, context: SendContext) -> None:
        _check(self.settings, context.credentials)

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        groups: dict[tuple[str, str], list[Outgoing]] = defaultdict(list)
        outcomes: list[Outcome] = []
        for item in batch:
            if not item.staff_userid:
                outcomes.append(
                    Outcome(item.delivery_id, OutcomeKind.FAILED, reason="no_wecom_sender", error="no staff user id")
                )
                continue
            groups[(item.staff_userid, _message_key(item.message))].append(item)
        for (sender, _key), items in groups.items():
            chat_ids = [i.address for i in items if i.address]
            post = post_to_groups(
                self.settings, context.credentials, sender, items[0].message, chat_ids=chat_ids or None
            )
            for i in items:
                provider_id = f"{post.msgid}:{i.address or sender}" if post.msgid else None
                outcomes.append(
                    Outcome(
                        i.delivery_id, post.kind, provider_message_id=provider_id, reason=post.reason, error=post.error
                    )
                )
        return outcomes


def group_send_result(
    settings: Mapping[str, Any], credentials: Mapping[str, Any], msgid: str, userid: str
) -> dict[str, tuple[int, int | None]]:
    """{external_userid: (status, send_time)} for one staff member's part of a mass message,
    following `next_cursor` through every page. Raises the client's errors (the caller retries
    on its next run)."""
    client = _client(settings, credentials)
    results: dict[str, tuple[int, int | None]] = {}
    cursor = ""
    while True:
        data: dict[str, Any] = {"msgid": msgid, "userid": userid, "limit": 1000}
        if cursor:
            data["cursor"] = cursor
        page = client.post("externalcontact/get_groupmsg_send_result", data=data)
        for row in page.get("send_list") or []:
            external = row.get("external_userid")
            if external:
                results[str(external)] = (int(row.get("status") or 0), row.get("send_time"))
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return results


def build_customer(settings: dict[str, Any]) -> WecomCustomerAdapter:
    return WecomCustomerAdapter(settings)


def build_group(settings: dict[str, Any]) -> WecomGroupAdapter:
    return WecomGroupAdapter(settings)
