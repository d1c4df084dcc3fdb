"""Background jobs of messaging: polling WeCom for what became of customer mass messages.

A WeCom mass message is a task the staff member confirms in the app, so "sent" only means the
task exists. Every few minutes `poll_wecom_results` asks `get_groupmsg_send_result` for each
(message, staff member) still waiting and maps the per-customer status:
1 → delivered; 2 (not a friend) → failed "not_friend"; 3 (already received another mass message
in the period) → suppressed "platform_capped", its cap slots given back; 0 → still waiting.

Workspaces with an active WeCom integration are left out: there
`siyu.integrations.wecom.messages` (job `wecom_message_tasks`) reconciles the same deliveries per
task, and polling them here too would ask WeCom twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.kit.errors import DomainError
from siyu.messaging import admission
from siyu.messaging.crypto import decrypt_credentials
from siyu.models import (
    AdapterKind,
    ChannelAccount,
    Delivery,
    DeliveryStatus,
    Staff,
    SuppressionReason,
    WecomIntegration,
)

logger = logging.getLogger(__name__)
POLL_WECOM_KIND = "poll_wecom_results"
POLL_WINDOW = timedelta(days=3)
"""Staff confirm mass messages within hours; after this a task is treated as abandoned."""
_SLICE = 500


def poll_wecom_results(database: Database, clock: Clock, *, window: timedelta = POLL_WINDOW) -> dict[str, int]:
    """Ask WeCom about every sent, not yet delivered customer mass message of the last `window`
    (workspaces without an active WeCom integration: see the module docstring); returns counts of
    what changed. Provider errors are logged and retried on the next run."""
    from siyu.messaging.adapters.wecom import group_send_result  # wechatpy only when WeCom is used

    totals = {"checked": 0, "delivered": 0, "not_friend": 0, "platform_capped": 0, "errors": 0}
    with database.transaction(read_only=True) as session:
        rows = session.execute(
            select(Delivery.channel_account_id, Delivery.provider_message_id, Staff.wecom_user_id)
            .join(Staff, Staff.id == Delivery.staff_id)
            .where(
                Delivery.channel == AdapterKind.WECOM_CUSTOMER,
                Delivery.status == DeliveryStatus.SENT,
                Delivery.delivered_at.is_(None),
                Delivery.provider_message_id.is_not(None),
                Delivery.sent_at >= clock.now() - window,
                ~exists().where(
                    WecomIntegration.workspace_id == Delivery.workspace_id, WecomIntegration.is_active.is_(True)
                ),
            )
            .execution_options(siyu_unscoped=True)
        ).all()
        tasks: dict[int, set[tuple[str, str]]] = defaultdict(set)
        for account_id, provider_id, userid in rows:
            msgid = str(provider_id).partition(":")[0]
            if account_id is not None and msgid and userid:
                tasks[account_id].add((msgid, userid))
        accounts = {
            a.id: (dict(a.settings or {}), a.credentials_encrypted, a.is_active)
            for a in session.scalars(select(ChannelAccount).where(ChannelAccount.id.in_(list(tasks))))
        }
    for account_id, pairs in tasks.items():
        settings, token, active = accounts.get(account_id, ({}, None, False))
        if not active:
            continue
        try:
            credentials = decrypt_credentials(token)
        except DomainError:
            totals["errors"] += 1
            continue
        for msgid, userid in sorted(pairs):
            try:
                results = group_send_result(settings, credentials, msgid, userid)
            except Exception:  # a provider hiccup for one task must not stop the others
                logger.exception("wecom result poll failed", extra={"channel_account_id": account_id, "msgid": msgid})
                totals["errors"] += 1
                continue
            totals["checked"] += 1
            _apply_results(database, clock, account_id, msgid, results, totals)
    return totals


def _apply_results(
    database: Database,
    clock: Clock,
    account_id: int,
    msgid: str,
    results: dict[str, tuple[int, int | None]],
    totals: dict[str, int],
) -> None:
    ids = sorted(f"{msgid}:{external}" for external, answer in results.items() if answer[0] in (1, 2, 3))
    for start in range(0, len(ids), _SLICE):
        with database.transaction() as session:
            part = {i.partition(":")[2]: results[i.partition(":")[2]] for i in ids[start : start + _SLICE]}
            apply_send_results(session, clock, msgid, part, totals, account_id=account_id)


def apply_send_results(
    session: Session,
    clock: Clock,
    msgid: str,
    results: dict[str, tuple[int, int | None]],
    totals: dict[str, int],
    *,
    account_id: int | None = None,
) -> None:
    """Map WeCom's per-customer results of `msgid` ({external_userid: (status, send_time)}) onto
    the matching sent deliveries (provider id "msgid:external_userid"); with `account_id`, only that
    channel account's (a job polling every workspace), else the session's workspace. Status 0 is
    left alone; 2 and 3 give the customer's cap slots back."""
    final = {f"{msgid}:{external}": answer for external, answer in results.items() if answer[0] in (1, 2, 3)}
    ids = sorted(final)
    for start in range(0, len(ids), _SLICE):
        query = select(Delivery).where(
            Delivery.provider_message_id.in_(ids[start : start + _SLICE]),
            Delivery.status == DeliveryStatus.SENT,
            Delivery.channel == AdapterKind.WECOM_CUSTOMER,
        )
        if account_id is not None:
            query = query.where(Delivery.channel_account_id == account_id).execution_options(siyu_unscoped=True)
        deliveries = session.scalars(
            query.order_by(Delivery.customer_id).with_for_update()  # the touch-state lock order
        ).all()
        unreached: list[Delivery] = []
        for delivery in deliveries:
            status, send_time = final[str(delivery.provider_message_id)]
            if status == 1:
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = datetime.fromtimestamp(send_time, UTC) if send_time else clock.now()
                totals["delivered"] = totals.get("delivered", 0) + 1
            elif status == 2:
                delivery.status, delivery.reason = DeliveryStatus.FAILED, "not_friend"
                delivery.error = "the customer is no longer the staff member's friend"
                unreached.append(delivery)
                totals["not_friend"] = totals.get("not_friend", 0) + 1
            else:
                delivery.status = DeliveryStatus.SUPPRESSED
                delivery.reason = SuppressionReason.PLATFORM_CAPPED
                delivery.error = "WeCom: the customer already received another mass message"
                unreached.append(delivery)
                totals["platform_capped"] = totals.get("platform_capped", 0) + 1
        admission.release_slots(session, unreached, clock)
        session.flush()


@job_actor(POLL_WECOM_KIND)
def poll_wecom_results_job(job: JobContext) -> dict[str, Any]:
    """The periodic job: poll WeCom mass-message results for every workspace."""
    return dict(poll_wecom_results(get_database(), system_clock))


periodic(POLL_WECOM_KIND, kind=POLL_WECOM_KIND, every=lambda: timedelta(minutes=10))
