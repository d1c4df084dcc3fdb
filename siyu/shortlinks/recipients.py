"""Per-recipient short links: one unguessable link per customer, derived from a campaign link.

An SMS to one customer carries their own link, so a click identifies them (the click row and a
`link.clicked` event on their timeline). Campaigns and SOPs (touch) call `links_for_recipients`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.experiments.assignment import assign_variant, variants_of
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import Experiment, ExperimentExposure, ExperimentMetric, ExperimentStatus, ShortLink
from siyu.shortlinks import repository
from siyu.shortlinks.errors import ShortLinkExpired, ShortLinkNotFound
from siyu.shortlinks.slugs import RECIPIENT_SLUG_LENGTH, random_slug

SLUG_ATTEMPTS = 8


def recipient_visitor_id(customer_id: int) -> str:
    """The experiment visitor key of a customer reached by a per-recipient link."""
    return f"c{customer_id}"


@dataclass(frozen=True)
class RecipientLinks:
    """The outcome of `links_for_recipients` with what the caller may want to report."""

    links: dict[int, ShortLink]
    created: int


def links_for_recipients(
    session: Session, *, actor: Actor, link_id: int, customer_ids: list[int], clock: Clock
) -> dict[int, ShortLink]:
    """One per-recipient link per customer, derived from campaign link `link_id`; idempotent.

    Calling again for the same customers returns the same links (unique parent + customer), so a
    retried send never mints a second slug. Each slug is 12 random base62 characters (~71 bits).
    When the campaign link runs a *click rate* experiment, making a customer's link is their
    exposure (visitor `c{customer_id}`); their click later converts it. Unknown customer ids or
    customers of another workspace are a 422 and nothing is written.

    Used by campaigns/SOPs (touch) to put a personal link into each SMS:
    `links_for_recipients(session, actor=actor, link_id=7, customer_ids=[1, 2], clock=clock)[1].slug`.
    """
    return create_recipient_links(session, actor=actor, link_id=link_id, customer_ids=customer_ids, clock=clock).links


def create_recipient_links(
    session: Session, *, actor: Actor, link_id: int, customer_ids: list[int], clock: Clock
) -> RecipientLinks:
    """`links_for_recipients`, also telling how many links this call created."""
    actor.require(Scope.ACQUISITION_WRITE)
    parent = repository.get_link(session, actor.workspace_id, link_id)
    if parent is None:
        raise ShortLinkNotFound(f"short link {link_id} not found")
    if parent.parent_id is not None:
        raise InvalidInput("recipient links are made from a campaign link", details={"field": "link_id"})
    now = clock.now()
    if parent.expires_at is not None and parent.expires_at <= now:
        raise ShortLinkExpired("the short link has expired", details={"field": "link_id"})
    wanted = list(dict.fromkeys(customer_ids))
    if not wanted:
        return RecipientLinks(links={}, created=0)
    known = repository.live_customer_ids(session, actor.workspace_id, wanted)
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise InvalidInput(
            f"unknown customers: {', '.join(map(str, unknown[:10]))}",
            details={"field": "customer_ids", "unknown": unknown[:100]},
        )
    links = repository.recipient_links(session, actor.workspace_id, parent.id, wanted)
    created = 0
    for _ in range(SLUG_ATTEMPTS):
        missing = [c for c in wanted if c not in links]
        if not missing:
            break
        for chunk in repository.chunks(missing):
            rows = [_recipient_row(parent, customer_id, now) for customer_id in chunk]
            repository.insert_ignoring_conflicts(session, ShortLink, rows)
        found = repository.recipient_links(session, actor.workspace_id, parent.id, missing)
        created += len(found)  # missing before, present now: made by this call (or a concurrent twin)
        links.update(found)
    else:
        if any(c not in links for c in wanted):
            raise Conflict("could not find free slugs; try again", details={"field": "customer_ids"})
    _expose_recipients(session, parent, wanted, now)
    if created:
        record(
            session,
            actor,
            action="create",
            entity_type="short_link_recipients",
            entity_id=parent.id,
            after={"created": created, "requested": len(wanted)},
            clock=clock,
        )
    return RecipientLinks(links={c: links[c] for c in wanted}, created=created)


def _recipient_row(parent: ShortLink, customer_id: int, now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": parent.workspace_id,
        "slug": random_slug(RECIPIENT_SLUG_LENGTH),
        "target_url": parent.target_url,
        "name": parent.name,
        "campaign": parent.campaign,
        "channel_id": parent.channel_id,
        "experiment_id": parent.experiment_id,
        "utm": parent.utm or {},
        "parent_id": parent.id,
        "customer_id": customer_id,
        "expires_at": parent.expires_at,
        "created_at": now,
    }


def _expose_recipients(session: Session, parent: ShortLink, customer_ids: list[int], now: datetime) -> None:
    """Record the exposures of a click-rate experiment for these recipients (what `expose` records, in bulk)."""
    if parent.experiment_id is None:
        return
    experiment = session.get(Experiment, parent.experiment_id)
    if (
        experiment is None
        or experiment.status != ExperimentStatus.RUNNING
        or experiment.primary_metric != ExperimentMetric.CLICK_RATE
    ):
        return
    weighted = [(v.key, v.weight) for v in variants_of(session, experiment.id)]
    if not weighted:
        return
    rows = []
    for customer_id in customer_ids:
        visitor = recipient_visitor_id(customer_id)
        rows.append(
            {
                "workspace_id": experiment.workspace_id,
                "experiment_id": experiment.id,
                "variant_key": assign_variant(experiment.id, visitor, weighted),
                "visitor_id": visitor,
                "customer_id": customer_id,
                "exposed_at": now,
            }
        )
    for start in range(0, len(rows), repository.CHUNK):
        # The first exposure wins, exactly as `expose` keeps it (unique experiment + visitor).
        repository.insert_ignoring_conflicts(session, ExperimentExposure, rows[start : start + repository.CHUNK])


def recipient_variants(session: Session, *, link: ShortLink, customer_ids: list[int]) -> dict[int, str]:
    """The variant key each recipient is assigned (empty when the link runs no experiment)."""
    if link.experiment_id is None:
        return {}
    weighted = [(v.key, v.weight) for v in variants_of(session, link.experiment_id)]
    if not weighted:
        return {}
    return {c: assign_variant(link.experiment_id, recipient_visitor_id(c), weighted) for c in customer_ids}
