"""Following a short link: where the visitor goes, and the click row (and timeline event) it leaves.

The redirect is on the hot path of every SMS and package card, so it reads everything it needs in
one query (link, campaign link, experiment, recipient) and writes one click row — plus, for a
per-recipient link, one timeline event — in the caller's single transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.experiments.assignment import assign_variant, convert, expose, variants_of
from siyu.kit.clock import Clock
from siyu.models import (
    Customer,
    CustomerEvent,
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    ExperimentVariant,
    ShortLink,
    ShortLinkClick,
)
from siyu.shortlinks import repository
from siyu.shortlinks.errors import ShortLinkGone, ShortLinkNotFound
from siyu.shortlinks.recipients import recipient_visitor_id
from siyu.shortlinks.slugs import is_redirectable, is_wellformed_slug, with_utm
from siyu.workspaces.scope import bind_workspace

CLICK_EVENT = "link.clicked"


@dataclass(frozen=True)
class Visit:
    """Who is clicking, as far as siyu keeps it: hashes and a truncated user agent, never the raw values."""

    visitor_id: str
    ip_hash: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Followed:
    """Where to send the visitor and the click recorded."""

    location: str
    click: ShortLinkClick


def follow(session: Session, *, slug: str, visit: Visit, clock: Clock) -> Followed:
    """Resolve `slug` for a visitor, record the click and return the target (with UTM tags).

    Raises `ShortLinkNotFound` for a malformed or unknown slug and `ShortLinkGone` for a deleted or
    expired link (its campaign link's state counts for a per-recipient link).
    """
    if not is_wellformed_slug(slug):
        raise ShortLinkNotFound("no such short link")
    hit = repository.link_for_slug(session, slug)
    if hit is None:
        raise ShortLinkNotFound("no such short link")
    link, campaign = hit.link, hit.parent or hit.link
    now = clock.now()
    if link.deleted_at is not None or campaign.deleted_at is not None:
        raise ShortLinkGone("this link has been removed")
    expires = [at for at in (link.expires_at, campaign.expires_at) if at is not None]
    if expires and min(expires) <= now:
        raise ShortLinkGone("this link has expired")
    bind_workspace(session, link.workspace_id)
    variant = _variant(session, link, hit.experiment, visit, now)
    target = campaign.target_url
    if variant is not None and is_redirectable((variant.content or {}).get("target_url")):
        target = variant.content["target_url"]
    click = ShortLinkClick(
        workspace_id=link.workspace_id,
        link_id=link.id,
        campaign_link_id=campaign.id,
        customer_id=link.customer_id,
        visitor_id=visit.visitor_id,
        variant=variant.key if variant is not None else None,
        user_agent=visit.user_agent,
        ip_hash=visit.ip_hash,
        clicked_at=now,
    )
    session.add(click)
    session.flush()
    if link.customer_id is not None and hit.customer_erased_at is None:
        customer_id = _surviving_customer(session, link.customer_id, hit.customer_merged_into)
        session.add(
            CustomerEvent(
                workspace_id=link.workspace_id,
                customer_id=customer_id,
                type=CLICK_EVENT,
                occurred_at=now,
                properties={
                    "short_link_id": campaign.id,
                    "slug": link.slug,
                    "campaign": campaign.campaign,
                    "variant": click.variant,
                    "click_id": click.id,
                },
                source="siyu",
                idempotency_key=f"short_link_click:{click.id}",
                recorded_at=now,
            )
        )
    return Followed(location=with_utm(target, campaign.utm), click=click)


def _variant(
    session: Session, link: ShortLink, experiment: Experiment | None, visit: Visit, now: datetime
) -> ExperimentVariant | None:
    """The variant this click sees, exposing or converting the visitor as the experiment's metric says."""
    if experiment is None or experiment.status != ExperimentStatus.RUNNING:
        return None
    click_rate = experiment.primary_metric == ExperimentMetric.CLICK_RATE
    if link.customer_id is None:
        if not click_rate:
            return expose(session, experiment=experiment, visitor_id=visit.visitor_id, at=now)
        # In a click-rate test the exposure is the send (a recipient link): someone clicking the
        # campaign link was never counted as sent, so they get a stable variant but no exposure row.
        return _assigned(session, experiment, visit.visitor_id, None)
    visitor = recipient_visitor_id(link.customer_id)
    if not click_rate:
        return expose(session, experiment=experiment, visitor_id=visitor, at=now, customer_id=link.customer_id)
    sent_as = session.scalar(
        select(ExperimentExposure.variant_key).where(
            ExperimentExposure.experiment_id == experiment.id, ExperimentExposure.visitor_id == visitor
        )
    )
    variant = _assigned(session, experiment, visitor, sent_as)
    if sent_as is not None:
        convert(session, experiment_id=experiment.id, visitor_id=visitor, at=now, customer_id=link.customer_id)
    return variant


def _assigned(session: Session, experiment: Experiment, visitor_id: str, key: str | None) -> ExperimentVariant | None:
    variants = variants_of(session, experiment.id)
    if not variants:
        return None
    if key is None:
        key = assign_variant(experiment.id, visitor_id, [(v.key, v.weight) for v in variants])
    return next((v for v in variants if v.key == key), None)


def _surviving_customer(session: Session, customer_id: int, merged_into: int | None) -> int:
    """Events follow merges: a click on a merged-away profile's link lands on the survivor."""
    seen = {customer_id}
    while merged_into is not None and merged_into not in seen:
        seen.add(merged_into)
        customer_id = merged_into
        merged_into = session.scalar(select(Customer.merged_into_id).where(Customer.id == customer_id))
    return customer_id
