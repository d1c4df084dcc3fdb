"""The welcome message of a WeCom add, sent right after the callback answers "success".

WeCom hands a `WelcomeCode` with `add_external_contact` / `add_half_external_contact` when the
contact way has no welcome of its own; the code is valid for 20 seconds and usable once (41051
afterwards; an expired code is refused as invalid), so the message is rendered from the live code
(decoded `State`, `siyu.livecodes.welcome.render_welcome`, the experiment arm's text) and sent by
the request's background task (`send_fast_path`), with a budget: a client with a short timeout
(`FAST_TIMEOUT_S`) whose limiter never waits, nothing sent once `DEADLINE_S` have passed since the
event's `CreateTime`, and 41096 (another app is sending the welcome right now) retried once when
time allows. The outcome is left on the event's payload (`payload["_welcome"]`) for the event's job,
which writes it to the customer's timeline once `record_add` has the customer: `welcome.sent` with
delivery "wecom", or `welcome.failed` with WeCom's errcode. Then the job is queued.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.customers import repository
from siyu.db import Database, get_database
from siyu.integrations.wecom.callbacks.service import WELCOME_KEY, StoredPush, queue_processing
from siyu.integrations.wecom.client import WecomClient, build_client
from siyu.integrations.wecom.config import WecomConfig
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.ratelimit import RateLimiter, rate_limiter
from siyu.integrations.wecom.status import note_error
from siyu.kit.clock import Clock
from siyu.livecodes.state import decode_state
from siyu.livecodes.welcome import WelcomeMessage, render_welcome
from siyu.models import Channel, ExperimentVariant, IdentityType, IntegrationEvent, LiveCode, Staff, Store
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
SEND_API = "externalcontact/send_welcome_msg"
MAX_ATTACHMENTS = 9
ADD_TYPES = frozenset({"add_external_contact", "add_half_external_contact"})
FAST_TIMEOUT_S = 3.0
"""HTTP timeout of each fast-path call (token fetch, send)."""
DEADLINE_S = 15.0
"""No send once this long has passed since the event's `CreateTime` (the code lives 20 s)."""
BUSY_CODE = 41096
"""「欢迎语正在由其他应用下发」: another app is sending; retried once after `BUSY_RETRY_AFTER_S`."""
BUSY_RETRY_AFTER_S = 1.0


def needs_fast_path(payload: dict[str, Any]) -> bool:
    """An add that carries a welcome code: its welcome must be sent within seconds of the push."""
    return (
        payload.get("Event") == "change_external_contact"
        and payload.get("ChangeType") in ADD_TYPES
        and bool(payload.get("WelcomeCode"))
    )


def fast_client(config: WecomConfig) -> WecomClient:
    """The contact-secret client of the fast path: short timeout, a limiter sharing the deployment's
    counts that refuses instead of waiting."""
    if not config.contact_secret:
        raise NotConfigured("the contact secret is not set")
    broker_url = get_database().settings.broker_url
    return build_client(
        config.corp_id,
        config.contact_secret,
        base_url=config.api_base_url,
        broker_url=broker_url,
        timeout=FAST_TIMEOUT_S,
        limiter=RateLimiter(rate_limiter(broker_url).counter, max_wait_s=0),
    )


def _age_s(payload: dict[str, Any], clock: Clock) -> float:
    raw = str(payload.get("CreateTime") or "")
    if not raw.isdigit():
        return 0.0
    return (clock.now() - datetime.fromtimestamp(int(raw), tz=UTC)).total_seconds()


def compose(
    session: Session, workspace_id: int, payload: dict[str, Any], *, name: str | None = None
) -> tuple[WelcomeMessage, int] | None:
    """The live code's welcome for this add, personalised, with the code's id; None when the
    `State` is not one of siyu's live codes or the code has no welcome. `name` is the customer's
    WeChat name when siyu does not know the customer yet (a first add)."""
    decoded = decode_state(str(payload.get("State") or "") or None)
    if decoded is None:
        return None
    code = session.scalar(
        select(LiveCode).where(LiveCode.id == decoded.live_code_id, LiveCode.workspace_id == workspace_id)
    )
    if code is None:
        return None
    channel = (
        session.scalar(select(Channel).where(Channel.id == decoded.channel_id, Channel.workspace_id == workspace_id))
        if decoded.channel_id
        else None
    )
    content: dict[str, Any] = {}
    if code.experiment_id is not None and decoded.variant is not None:
        content = (
            session.scalar(
                select(ExperimentVariant.content).where(
                    ExperimentVariant.experiment_id == code.experiment_id, ExperimentVariant.key == decoded.variant
                )
            )
            or {}
        )
    staff = session.scalar(
        select(Staff).where(Staff.workspace_id == workspace_id, Staff.wecom_user_id == str(payload.get("UserID") or ""))
    )
    store_name = ""
    if staff is not None and staff.store_id is not None:
        store_name = session.scalar(select(Store.name).where(Store.id == staff.store_id)) or ""
    customer = repository.find_by_identity(
        session, workspace_id, str(IdentityType.WECOM_EXTERNAL_USERID), str(payload.get("ExternalUserID") or "")
    )
    context = {
        "name": (customer.name if customer is not None else "") or name or "",
        "staff_name": staff.name if staff is not None else "",
        "store_name": store_name,
        "hook": str(content.get("hook") or (channel.hook if channel is not None else "") or ""),
        "channel_name": channel.name if channel is not None else "",
        "code_name": code.name,
    }
    message = render_welcome(code.welcome or {}, context, text_override=content.get("welcome_text"))
    if not (message.text or message.image_url or message.link or message.miniprogram):
        return None
    return message, code.id


def wecom_body(message: WelcomeMessage) -> dict[str, Any]:
    """`send_welcome_msg`'s text and attachments for a rendered welcome. A mini-program card goes
    only with a `pic_media_id` (WeCom requires an uploaded cover)."""
    body: dict[str, Any] = {}
    if message.text:
        body["text"] = {"content": message.text}
    attachments: list[dict[str, Any]] = []
    if message.image_url:
        attachments.append({"msgtype": "image", "image": {"pic_url": message.image_url}})
    link = message.link or {}
    if link.get("url"):
        card = {"title": link.get("title") or link["url"], "url": link["url"]}
        card.update({k: link[k] for k in ("picurl", "desc") if link.get(k)})
        attachments.append({"msgtype": "link", "link": card})
    mini = message.miniprogram or {}
    if mini.get("appid") and mini.get("page") and mini.get("pic_media_id"):
        attachments.append(
            {
                "msgtype": "miniprogram",
                "miniprogram": {k: mini.get(k) or "" for k in ("title", "pic_media_id", "appid", "page")},
            }
        )
    if attachments:
        body["attachments"] = attachments[:MAX_ATTACHMENTS]
    return body


def send(client: WecomClient, welcome_code: str, message: WelcomeMessage, *, budget_s: float) -> dict[str, Any]:
    """Send `message` with `welcome_code`; the outcome as stored on the event (never raises). A 41096
    is retried once when `budget_s` leaves room for it."""
    outcome: dict[str, Any] = {"message": message.as_dict()}
    started = time.monotonic()
    data = {"welcome_code": welcome_code, **wecom_body(message)}
    for attempt in (1, 2):
        try:
            client.call("POST", SEND_API, data=data)
        except WecomError as exc:
            left = budget_s - (time.monotonic() - started)
            if exc.code == BUSY_CODE and attempt == 1 and left > BUSY_RETRY_AFTER_S + FAST_TIMEOUT_S:
                time.sleep(BUSY_RETRY_AFTER_S)
                continue
            return {**outcome, "status": "failed", "errcode": exc.code, "error": str(exc)[:500], "attempts": attempt}
        return {**outcome, "status": "sent", "attempts": attempt}
    raise AssertionError("unreachable")


def _new_customer_name(database: Database, client: WecomClient, stored: StoredPush, budget: float) -> str | None:
    """The WeChat name of a customer siyu does not know yet, so the first welcome can greet them by
    name; None when siyu knows them (their stored name is used), when the budget leaves no room for
    a lookup before the send, or when WeCom does not answer (the welcome then says 亲)."""
    external_userid = str(stored.payload.get("ExternalUserID") or "")
    if not external_userid or budget < 2 * FAST_TIMEOUT_S:
        return None
    if decode_state(str(stored.payload.get("State") or "") or None) is None:
        return None  # not an add through one of siyu's live codes: no welcome of ours to personalise
    with database.transaction(read_only=True) as session:
        bind_workspace(session, stored.workspace_id)
        known = repository.find_by_identity(
            session, stored.workspace_id, str(IdentityType.WECOM_EXTERNAL_USERID), external_userid
        )
    if known is not None:
        return None
    try:
        info = client.call("GET", "externalcontact/get", params={"external_userid": external_userid})
    except WecomError:
        return None
    contact = info.get("external_contact")
    return str(contact.get("name") or "") or None if isinstance(contact, dict) else None


def send_fast_path(database: Database, clock: Clock, config: WecomConfig, stored: StoredPush) -> None:
    """Render and send the welcome of a just-stored add, record the outcome on the event, then
    queue the event's job. Never raises (it runs after the answer, as a background task)."""
    workspace_id = stored.workspace_id
    outcome: dict[str, Any]
    try:
        budget = DEADLINE_S - _age_s(stored.payload, clock)
        client = fast_client(config)
        name = _new_customer_name(database, client, stored, budget)
        with database.transaction(read_only=True) as session:
            bind_workspace(session, workspace_id)
            composed = compose(session, workspace_id, stored.payload, name=name)
        if composed is None:
            outcome = {"status": "skipped", "reason": "no siyu welcome for this state"}
        elif budget <= 0:
            outcome = {
                "status": "failed",
                "errcode": None,
                "error": f"welcome code too old: more than {DEADLINE_S:.0f} s since the add",
                "live_code_id": composed[1],
            }
        else:
            message, live_code_id = composed
            budget = DEADLINE_S - _age_s(stored.payload, clock)
            sent = send(client, str(stored.payload["WelcomeCode"]), message, budget_s=budget)
            outcome = {**sent, "live_code_id": live_code_id}
    except Exception as exc:  # rendering failed, or no secret: the add itself must still be processed
        logger.exception("wecom welcome fast path failed", extra={"event_id": stored.event_id})
        outcome = {"status": "failed", "errcode": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
    outcome["at"] = clock.now().isoformat()
    try:
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            event = session.get(IntegrationEvent, stored.event_id)
            if event is not None:
                event.payload = {**event.payload, WELCOME_KEY: outcome}
            if outcome["status"] == "failed":
                text = f"welcome message failed (errcode {outcome.get('errcode')}): {outcome.get('error')}"
                note_error(session, workspace_id, text, clock)
            queue_processing(session, workspace_id=workspace_id, event_id=stored.event_id, clock=clock)
    except Exception as exc:  # the outcome is lost; the add still gets processed
        logger.exception("wecom welcome outcome not recorded", extra={"event_id": stored.event_id})
        _record_lost_outcome(database, clock, stored, exc)


def _record_lost_outcome(database: Database, clock: Clock, stored: StoredPush, exc: Exception) -> None:
    """The write-back failed: note it and queue the job in a fresh transaction (else the sweep
    picks the event up once it is stuck)."""
    try:
        with database.transaction() as session:
            bind_workspace(session, stored.workspace_id)
            note_error(session, stored.workspace_id, f"welcome outcome not recorded: {type(exc).__name__}", clock)
            queue_processing(session, workspace_id=stored.workspace_id, event_id=stored.event_id, clock=clock)
    except Exception:
        logger.exception("wecom welcome: cannot note the lost outcome", extra={"event_id": stored.event_id})
