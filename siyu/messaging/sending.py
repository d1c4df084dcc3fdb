"""Sending: claim due deliveries, render them, hand them to adapters, record what happened.

Exactly once: a delivery row exists once per (source, step, customer) and moves
queued → sending → sent/failed/suppressed under row locks (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so parallel senders take disjoint rows; SQLite has one writer). Adapters that write
in the database (the sandbox) send inside the claiming transaction, so claim, send and result
commit together. External providers are called between two transactions; a sender killed in that
gap leaves rows in `sending`, which `requeue_stale` sends again after the lease with the same
idempotency key (`Outgoing.idempotency_key`) for providers that deduplicate on it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.db import Database, get_database
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.messaging import admission, content, policy
from siyu.messaging.adapters import adapter_for, consent_channel_of
from siyu.messaging.adapters.base import Adapter, Outcome, OutcomeKind, Outgoing, SendContext, unexpected_error
from siyu.messaging.crypto import decrypt_credentials
from siyu.messaging.unsubscribe import unsubscribe_token
from siyu.models import (
    AdapterKind,
    Broadcast,
    BroadcastStatus,
    ChannelAccount,
    ContentItem,
    Customer,
    Delivery,
    DeliveryStatus,
    Journey,
    JourneyStatus,
    Priority,
    ShortLink,
    Staff,
    SuppressionReason,
    Workspace,
)
from siyu.shortlinks.recipients import links_for_recipients
from siyu.shortlinks.service import create_link

logger = logging.getLogger(__name__)
STALE_LEASE = timedelta(minutes=10)
EXTERNAL_CHUNK = 50
"""Items per heartbeat for providers called once per recipient (≤ 50 × their timeout ≪ the lease)."""
BULK_BATCH = 1000
"""A delivery left in `sending` this long belongs to a sender that died."""


@dataclass
class SendStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    rejected: int = 0
    releases: list[Delivery] = field(default_factory=list, repr=False)
    configs: dict[int, policy.PolicyConfig] = field(default_factory=dict, repr=False)
    """Deliveries whose cap slots go back at the end of the transaction, in customer order (the
    lock order every writer of touch states uses, so senders and planners never deadlock)."""

    def add(self, other: SendStats) -> None:
        for name in ("claimed", "sent", "retried", "failed", "rejected"):  # releases are per transaction
            setattr(self, name, getattr(self, name) + getattr(other, name))


def backoff(attempts: int) -> timedelta:
    """Wait before retry number `attempts`: 30 s, 2 min, 8 min, 32 min, then hourly."""
    return timedelta(seconds=min(30 * 4 ** max(attempts - 1, 0), 3600))


@dataclass
class _Pending:
    """External sends claimed in one transaction and sent after it commits."""

    workspace_id: int
    account_id: int
    adapter: Adapter
    credentials: dict[str, Any]
    items: list[Outgoing]
    token: datetime
    """The `claimed_at` this sender wrote: a row whose `claimed_at` differs was taken over."""


def send_due(
    database: Database, clock: Clock, *, limit: int | None = None, workspace_id: int | None = None
) -> SendStats:
    """Claim up to `limit` due deliveries (highest priority first) and send them."""
    limit = limit or database.settings.send_batch_size
    stats = SendStats()
    pending: list[_Pending] = []
    with database.transaction() as session:
        claimed = _claim(session, clock, limit, workspace_id)
        stats.claimed = len(claimed)
        claimed = _drop_stopped(session, clock, claimed, stats)
        groups: dict[tuple[int, int | None], list[Delivery]] = defaultdict(list)
        for delivery in claimed:
            groups[(delivery.workspace_id, delivery.channel_account_id)].append(delivery)
        for (ws, account_id), deliveries in groups.items():
            pending += _send_group(session, clock, ws, account_id, deliveries, stats)
        _release_slots(session, clock, stats)
    for job in pending:
        _send_external(database, clock, job, stats)
    return stats


def _claim(session: Session, clock: Clock, limit: int, workspace_id: int | None) -> list[Delivery]:
    query = select(Delivery).where(Delivery.status == DeliveryStatus.QUEUED, Delivery.not_before <= clock.now())
    if workspace_id is not None:
        query = query.where(Delivery.workspace_id == workspace_id)
    # Ordered by the send-queue index's own columns only: adding `id` made both databases read and
    # sort every queued row sharing one `not_before` (a whole broadcast held to the same morning)
    # for each claim of `limit` rows. Ties come in index order (SQLite: by id).
    query = query.order_by(Delivery.priority, Delivery.not_before).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(query.execution_options(siyu_unscoped=True)))


def _send_group(
    session: Session,
    clock: Clock,
    workspace_id: int,
    account_id: int | None,
    deliveries: list[Delivery],
    stats: SendStats,
) -> list[_Pending]:
    account = session.get(ChannelAccount, account_id) if account_id is not None else None
    if account is None or not account.is_active:
        for delivery in deliveries:
            _fail(session, clock, delivery, "channel_inactive", "the channel account is deleted or switched off", stats)
        return []
    try:
        adapter = adapter_for(account)
        credentials = decrypt_credentials(account.credentials_encrypted)
    except DomainError as exc:
        for delivery in deliveries:
            _fail(session, clock, delivery, "bad_credentials", exc.message, stats)
        return []
    items = _render(session, clock, workspace_id, account, deliveries, stats)
    now = clock.now()
    for delivery in deliveries:
        if delivery.status == DeliveryStatus.QUEUED:
            delivery.attempts += 1
    by_id = {d.id: d for d in deliveries}
    if adapter.capabilities.in_transaction:
        context = SendContext(session=session, clock=clock, account=account, credentials=credentials)
        for chunk in _chunks(items, adapter.capabilities.max_batch):
            for outcome in adapter.send(context, chunk):
                _apply(session, clock, by_id[outcome.delivery_id], outcome, stats)
        return []
    for item in items:
        delivery = by_id[item.delivery_id]
        delivery.status, delivery.claimed_at = DeliveryStatus.SENDING, now
    return [_Pending(workspace_id, account.id, adapter, credentials, items, now)] if items else []


def _drop_stopped(session: Session, clock: Clock, claimed: list[Delivery], stats: SendStats) -> list[Delivery]:
    """Suppress claimed deliveries of cancelled broadcasts and archived journeys (they may have
    been queued for a later time, or come back from a retry, after the stop)."""
    broadcast_ids = {d.source_id for d in claimed if d.source == "broadcast"}
    journey_ids = {d.source_id for d in claimed if d.source == "journey"}
    stopped: set[tuple[str, int]] = set()
    if broadcast_ids:
        stopped |= {
            ("broadcast", i)
            for i in session.scalars(
                select(Broadcast.id)
                .where(Broadcast.id.in_(broadcast_ids), Broadcast.status == BroadcastStatus.CANCELLED)
                .execution_options(siyu_unscoped=True)
            )
        }
    if journey_ids:
        stopped |= {
            ("journey", i)
            for i in session.scalars(
                select(Journey.id)
                .where(Journey.id.in_(journey_ids), Journey.status == JourneyStatus.ARCHIVED)
                .execution_options(siyu_unscoped=True)
            )
        }
    if not stopped:
        return claimed
    kept = []
    for delivery in claimed:
        if (delivery.source, delivery.source_id) in stopped:
            delivery.status, delivery.reason = DeliveryStatus.SUPPRESSED, "cancelled"
            _give_back(session, clock, delivery, stats)
        else:
            kept.append(delivery)
    return kept


def _send_external(database: Database, clock: Clock, job: _Pending, stats: SendStats) -> None:
    with database.transaction(read_only=True) as session:
        account = session.get(ChannelAccount, job.account_id)
        assert account is not None
        session.expunge(account)
    size = job.adapter.capabilities.max_batch
    # Per-recipient providers get small chunks so each heartbeat comes well within the lease;
    # bulk APIs (WeCom: 10,000 ids in one call) keep their batch whole.
    size = size if size >= BULK_BATCH else min(size, EXTERNAL_CHUNK)
    for chunk in _chunks(job.items, size):
        mine, token = _heartbeat(database, clock, job, chunk)
        chunk = [item for item in chunk if item.delivery_id in mine]
        if not chunk:
            continue
        context = SendContext(session=None, clock=clock, account=account, credentials=job.credentials)  # type: ignore[arg-type]
        try:
            outcomes = job.adapter.send(context, chunk)
        except Exception as exc:
            # An adapter bug: we cannot know which items already went out, so none is retried
            # (a retry could send them twice); they fail with the reason and the log has the why.
            unexpected_error(logger, exc)  # logs the stack without secrets in the text
            outcomes = [
                Outcome(i.delivery_id, OutcomeKind.FAILED, error=type(exc).__name__, reason="adapter_error")
                for i in chunk
            ]
        with database.transaction() as session:
            rows = {
                d.id: d
                for d in session.scalars(
                    select(Delivery)
                    .where(
                        Delivery.id.in_([o.delivery_id for o in outcomes]),
                        Delivery.status == DeliveryStatus.SENDING,
                        Delivery.claimed_at == token,
                    )
                    .with_for_update()
                    .execution_options(siyu_unscoped=True)
                )
            }
            for outcome in outcomes:
                if outcome.delivery_id in rows:
                    _apply(session, clock, rows[outcome.delivery_id], outcome, stats)
            _release_slots(session, clock, stats)


def _heartbeat(database: Database, clock: Clock, job: _Pending, chunk: Sequence[Outgoing]) -> tuple[set[int], datetime]:
    """Renew the claim on a chunk just before sending it; returns the ids still ours (a sweep may
    have re-queued rows whose lease ran out while earlier chunks were slow) and the new token."""
    token = clock.now()
    with database.transaction() as session:
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_([i.delivery_id for i in chunk]),
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.claimed_at == job.token,
            )
            .values(claimed_at=token)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False, siyu_unscoped=True)
        )
        mine = set(result.scalars())
    return mine, token


def _chunks(items: Sequence[Outgoing], size: int) -> list[Sequence[Outgoing]]:
    return [items[i : i + size] for i in range(0, len(items), max(size, 1))]


def _apply(session: Session, clock: Clock, delivery: Delivery, outcome: Outcome, stats: SendStats) -> None:
    now = clock.now()
    if outcome.kind == OutcomeKind.SENT:
        delivery.status, delivery.sent_at = DeliveryStatus.SENT, now
        delivery.provider_message_id = outcome.provider_message_id
        delivery.reason = delivery.error = None
        stats.sent += 1
    elif outcome.kind == OutcomeKind.RETRY and delivery.attempts < get_database().settings.send_max_attempts:
        delivery.status = DeliveryStatus.QUEUED
        delivery.not_before = _outside_quiet_hours(session, delivery, now + backoff(delivery.attempts), stats)
        delivery.reason, delivery.error = (outcome.reason or "retry")[:30], (outcome.error or "")[:500] or None
        stats.retried += 1
    elif outcome.kind == OutcomeKind.REJECTED:
        delivery.status = DeliveryStatus.SUPPRESSED
        delivery.reason = (outcome.reason or SuppressionReason.PROVIDER_REJECTED)[:30]
        delivery.error = (outcome.error or "")[:500] or None
        _give_back(session, clock, delivery, stats)
        stats.rejected += 1
    else:
        _fail(session, clock, delivery, outcome.reason or "failed", outcome.error or "", stats)


def _outside_quiet_hours(session: Session, delivery: Delivery, at: datetime, stats: SendStats) -> datetime:
    """A retry time moved past quiet hours (transactional messages ignore them)."""
    if delivery.priority == Priority.TRANSACTIONAL:
        return at
    if delivery.workspace_id not in stats.configs:
        stats.configs[delivery.workspace_id] = admission.load_config(session, delivery.workspace_id)
    config = stats.configs[delivery.workspace_id]
    local = policy.quiet_hours_end(at.astimezone(config.tz), config.quiet_start, config.quiet_end)
    return local.astimezone(at.tzinfo)


def _fail(session: Session, clock: Clock, delivery: Delivery, reason: str, error: str, stats: SendStats) -> None:
    delivery.status, delivery.reason, delivery.error = DeliveryStatus.FAILED, reason[:30], error[:500] or None
    _give_back(session, clock, delivery, stats)
    stats.failed += 1


def _give_back(session: Session, clock: Clock, delivery: Delivery, stats: SendStats) -> None:
    stats.releases.append(delivery)


def _release_slots(session: Session, clock: Clock, stats: SendStats) -> None:
    admission.release_slots(session, stats.releases, clock)
    stats.releases.clear()


def _render(
    session: Session,
    clock: Clock,
    workspace_id: int,
    account: ChannelAccount,
    deliveries: list[Delivery],
    stats: SendStats,
) -> list[Outgoing]:
    """Render each delivery's content for its customer; a variable that does not resolve fails
    that delivery (reason `unresolved_variable`) and leaves the rest of the batch alone."""
    customers = {
        c.id: c
        for c in session.scalars(
            select(Customer)
            .where(Customer.id.in_([d.customer_id for d in deliveries]))
            .execution_options(siyu_unscoped=True)
        )
    }
    contents = {
        c.id: c
        for c in session.scalars(
            select(ContentItem)
            .where(ContentItem.id.in_({d.content_id for d in deliveries if d.content_id}))
            .execution_options(siyu_unscoped=True)
        )
    }
    workspace = session.get(Workspace, workspace_id)
    staff_ids = {d.staff_id for d in deliveries if d.staff_id}
    staff_names: dict[int, str] = {}
    staff_userids: dict[int, str | None] = {}
    for staff_id, name, userid in session.execute(
        select(Staff.id, Staff.name, Staff.wecom_user_id).where(Staff.id.in_(staff_ids))
    ):
        staff_names[staff_id], staff_userids[staff_id] = name, userid
    # Grouped by source too: each source's links hang under its own campaign link.
    by_content: dict[tuple[str, int, int], list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.content_id in contents and delivery.customer_id in customers:
            by_content[(delivery.source, delivery.source_id, delivery.content_id)].append(delivery)
        else:
            _fail(session, clock, delivery, "content_missing", "the content or the customer no longer exists", stats)
    items: list[Outgoing] = []
    for (_source, _source_id, content_id), group in by_content.items():
        item = contents[content_id]
        try:
            names = content.check_content(item)
        except DomainError as exc:  # the content was edited into something invalid after planning
            for delivery in group:
                _fail(session, clock, delivery, "invalid_template", exc.message, stats)
            continue
        group_customers = [customers[d.customer_id] for d in group]
        variables = content.load_variables(session, workspace_id, group_customers, names)
        # A WeCom mass message is one text per staff member: everyone gets the campaign link.
        shared = AdapterKind(account.kind) == AdapterKind.WECOM_CUSTOMER
        links = _recipient_links(session, clock, workspace_id, item, group, shared=shared) if item.link_url else {}
        settings = get_database().settings
        base_url = settings.public_url.rstrip("/")
        secret = settings.session_secret()
        can_unsubscribe = consent_channel_of(AdapterKind(account.kind), dict(account.settings or {})) is not None
        for delivery in group:
            values: dict[str, Any] = dict(variables[delivery.customer_id])
            values.update((delivery.message or {}).get("vars", {}))
            if workspace is not None:
                values.setdefault("brand", workspace.name)
            if delivery.staff_id in staff_names:
                values.setdefault("staff_name", staff_names[delivery.staff_id])
            # Only where there is a consent to withdraw; elsewhere {{ unsubscribe_url }} does not resolve.
            unsubscribe_url = f"{base_url}/u/{unsubscribe_token(delivery.id, secret)}" if can_unsubscribe else None
            if unsubscribe_url:
                values["unsubscribe_url"] = unsubscribe_url
            link = links.get(delivery.customer_id)
            if link is not None:
                values["link"] = f"{base_url}/s/{link.slug}"
                delivery.short_link_id = link.id
            try:
                message = content.render(item, values)
            except content.RenderError as exc:
                _fail(session, clock, delivery, "unresolved_variable", str(exc), stats)
                continue
            if unsubscribe_url:
                message["unsubscribe_url"] = unsubscribe_url
            delivery.message = message
            items.append(
                Outgoing(
                    delivery_id=delivery.id,
                    customer_id=delivery.customer_id,
                    address=delivery.address,
                    message=message,
                    staff_userid=staff_userids.get(delivery.staff_id) if delivery.staff_id else None,
                )
            )
    return items


def _recipient_links(
    session: Session,
    clock: Clock,
    workspace_id: int,
    item: ContentItem,
    deliveries: list[Delivery],
    *,
    shared: bool = False,
) -> dict[int, ShortLink]:
    """Per-recipient short links under one campaign link per (source, content); with `shared`,
    the campaign link itself for everyone."""
    actor = Actor.system(workspace_id, label="touch")
    first = deliveries[0]
    campaign = f"{first.source}:{first.source_id}:{item.id}"
    parent = session.scalar(
        select(ShortLink).where(
            ShortLink.workspace_id == workspace_id,
            ShortLink.campaign == campaign,
            ShortLink.parent_id.is_(None),
            ShortLink.deleted_at.is_(None),
        )
    )
    if parent is None:
        assert item.link_url is not None
        parent = create_link(
            session, actor=actor, target_url=item.link_url, clock=clock, name=item.name[:100], campaign=campaign
        )
    if shared:
        return {d.customer_id: parent for d in deliveries}
    return links_for_recipients(
        session, actor=actor, link_id=parent.id, customer_ids=[d.customer_id for d in deliveries], clock=clock
    )


def requeue_stale(session: Session, clock: Clock, lease: timedelta = STALE_LEASE) -> int:
    """Send again what a dead sender left in `sending` (same idempotency key); returns how many."""
    now = clock.now()
    stale = or_(Delivery.claimed_at.is_(None), Delivery.claimed_at < now - lease)
    workspaces = session.scalars(
        select(Delivery.workspace_id)
        .where(Delivery.status == DeliveryStatus.SENDING, stale)
        .distinct()
        .execution_options(siyu_unscoped=True)
    ).all()
    count = 0
    for workspace_id in workspaces:
        # Not at night: a requeued marketing send waits for the end of quiet hours like any other.
        config = admission.load_config(session, workspace_id)
        morning = policy.quiet_hours_end(now.astimezone(config.tz), config.quiet_start, config.quiet_end)
        for transactional, at in ((True, now), (False, morning.astimezone(now.tzinfo))):
            priority = Delivery.priority == Priority.TRANSACTIONAL
            result = session.execute(
                update(Delivery)
                .where(
                    Delivery.workspace_id == workspace_id,
                    Delivery.status == DeliveryStatus.SENDING,
                    stale,
                    priority if transactional else ~priority,
                )
                .values(status=DeliveryStatus.QUEUED, not_before=at)
                .execution_options(synchronize_session=False, siyu_unscoped=True)
            )
            count += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return count
