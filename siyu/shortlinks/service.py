"""Short links (短链): creating campaign links, per-recipient links, changing and deleting them.

Per-recipient links live in `siyu.shortlinks.recipients` (re-exported here).

A campaign link is what an operator prints or posts (`/s/Ab3dE9x`). A per-recipient link is
derived from it for one customer (`/s/q8Zr2LmP0aXc`), so an SMS click tells who clicked; it always
follows its campaign link's target, tags, expiry and deletion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.experiments.assignment import variants_of
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import Conflict, InvalidInput
from siyu.kit.pagination import Page
from siyu.models import (
    Channel,
    Experiment,
    ExperimentStatus,
    ShortLink,
)
from siyu.shortlinks import repository
from siyu.shortlinks.errors import ShortLinkNotFound, SlugTaken
from siyu.shortlinks.recipients import (
    RecipientLinks,
    create_recipient_links,
    links_for_recipients,
    recipient_variants,
    recipient_visitor_id,
)
from siyu.shortlinks.slugs import (
    CAMPAIGN_SLUG_LENGTH,
    is_redirectable,
    random_slug,
    validate_custom_slug,
    validate_target_url,
    validate_utm,
)

__all__ = [  # the recipient functions are re-exported: other areas import them from here
    "KEEP",
    "RecipientLinks",
    "click_counts",
    "create_link",
    "create_recipient_links",
    "delete_link",
    "form_choices",
    "get_link",
    "links_for_recipients",
    "list_links",
    "recipient_variants",
    "recipient_visitor_id",
    "update_link",
]

SLUG_ATTEMPTS = 8
"""Random slugs collide about never; a few retries make "about" into "in practice never"."""
MAX_TEXT = 100


class _Keep:
    """Marker for "leave this field as it is" in `update_link` (None means "clear it")."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


def _text(value: str | None, field: str, *, required: bool = False) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise InvalidInput(f"{field} is required", details={"field": field})
        return None
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{field} is longer than {MAX_TEXT} characters", details={"field": field})
    return value


def _future(expires_at: datetime | None, clock: Clock) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone", details={"field": "expires_at"})
    expires_at = as_utc(expires_at)
    if expires_at <= clock.now():
        raise InvalidInput("expires_at must be in the future", details={"field": "expires_at"})
    return expires_at


def _experiment(session: Session, workspace_id: int, experiment_id: int | None) -> Experiment | None:
    if experiment_id is None:
        return None
    experiment = session.scalar(
        select(Experiment).where(Experiment.id == experiment_id, Experiment.workspace_id == workspace_id)
    )
    if experiment is None:
        raise InvalidInput("unknown experiment", details={"field": "experiment_id"})
    if experiment.status == ExperimentStatus.FINISHED:
        raise InvalidInput("the experiment has finished", details={"field": "experiment_id"})
    for variant in variants_of(session, experiment.id):
        url = (variant.content or {}).get("target_url")
        if url is not None and not is_redirectable(url):
            raise InvalidInput(
                f"variant {variant.key} has a target_url that is not an http(s) URL",
                details={"field": "experiment_id", "variant": variant.key},
            )
    return experiment


def _check_channel(session: Session, workspace_id: int, channel_id: int | None) -> None:
    if channel_id is None:
        return
    found = session.scalar(select(Channel.id).where(Channel.id == channel_id, Channel.workspace_id == workspace_id))
    if found is None:
        raise InvalidInput("unknown channel", details={"field": "channel_id"})


def snapshot(link: ShortLink) -> dict[str, Any]:
    """The audited fields of a link."""
    return {
        "slug": link.slug,
        "target_url": link.target_url,
        "name": link.name,
        "campaign": link.campaign,
        "channel_id": link.channel_id,
        "experiment_id": link.experiment_id,
        "utm": link.utm,
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
    }


def create_link(
    session: Session,
    *,
    actor: Actor,
    target_url: str,
    clock: Clock,
    name: str | None = None,
    campaign: str | None = None,
    channel_id: int | None = None,
    experiment_id: int | None = None,
    utm: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    slug: str | None = None,
) -> ShortLink:
    """Create a campaign link with a random 7-character slug, or the custom `slug` given."""
    actor.require(Scope.ACQUISITION_WRITE)
    values = {
        "workspace_id": actor.workspace_id,
        "target_url": validate_target_url(target_url),
        "name": _text(name, "name"),
        "campaign": _text(campaign, "campaign"),
        "channel_id": channel_id,
        "utm": validate_utm(utm),
        "expires_at": _future(expires_at, clock),
        "created_at": clock.now(),
    }
    _check_channel(session, actor.workspace_id, channel_id)
    experiment = _experiment(session, actor.workspace_id, experiment_id)
    values["experiment_id"] = experiment.id if experiment else None
    custom = validate_custom_slug(slug.strip()) if slug and slug.strip() else None
    if custom is not None and session.scalar(select(ShortLink.id).where(ShortLink.slug == custom)) is not None:
        raise SlugTaken(f"the slug {custom!r} is taken", details={"field": "slug"})
    link = _insert_with_free_slug(session, values, custom)
    record(
        session, actor, action="create", entity_type="short_link", entity_id=link.id, after=snapshot(link), clock=clock
    )
    return link


def _insert_with_free_slug(session: Session, values: dict[str, Any], custom: str | None) -> ShortLink:
    for _ in range(SLUG_ATTEMPTS):
        link = ShortLink(slug=custom or random_slug(CAMPAIGN_SLUG_LENGTH), **values)
        try:
            with session.begin_nested():  # a collision undoes only this insert
                session.add(link)
                session.flush()
        except IntegrityError:
            if custom is not None:
                raise SlugTaken(f"the slug {custom!r} is taken", details={"field": "slug"}) from None
            continue
        return link
    raise Conflict("could not find a free slug; try again", details={"field": "slug"})


def get_link(session: Session, *, workspace_id: int, link_id: int) -> ShortLink:
    """A live (not deleted) link of the workspace, campaign or per-recipient; 404 otherwise."""
    link = repository.get_link(session, workspace_id, link_id)
    if link is None:
        raise ShortLinkNotFound(f"short link {link_id} not found")
    return link


def list_links(
    session: Session, *, workspace_id: int, cursor: str | None = None, limit: int = 50, campaign: str | None = None
) -> Page[ShortLink]:
    """Campaign links, newest first (per-recipient links are reached through their campaign link)."""
    return repository.campaign_links(session, workspace_id, cursor=cursor, limit=limit, campaign=campaign)


def click_counts(session: Session, *, workspace_id: int, link_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(clicks, unique visitors) per campaign link id, recipient links' clicks included."""
    return repository.click_counts(session, workspace_id, link_ids)


def update_link(
    session: Session,
    *,
    actor: Actor,
    link_id: int,
    clock: Clock,
    target_url: str | _Keep = KEEP,
    expires_at: datetime | _Keep | None = KEEP,
    name: str | _Keep | None = KEEP,
) -> ShortLink:
    """Change a campaign link's target, expiry (None: never expires) or name; its recipient links follow."""
    actor.require(Scope.ACQUISITION_WRITE)
    link = get_link(session, workspace_id=actor.workspace_id, link_id=link_id)
    if link.parent_id is not None:
        raise InvalidInput("change the campaign link; recipient links follow it", details={"field": "link_id"})
    before = snapshot(link)
    if not isinstance(target_url, _Keep):
        link.target_url = validate_target_url(target_url)
    if not isinstance(expires_at, _Keep):
        link.expires_at = _future(expires_at, clock)
    if not isinstance(name, _Keep):
        link.name = _text(name, "name")
    session.execute(
        update(ShortLink)
        .where(ShortLink.workspace_id == actor.workspace_id, ShortLink.parent_id == link.id)
        .values(target_url=link.target_url, expires_at=link.expires_at)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    after = snapshot(link)
    if after != before:
        record(
            session,
            actor,
            action="update",
            entity_type="short_link",
            entity_id=link.id,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
            clock=clock,
        )
    return link


def delete_link(session: Session, *, actor: Actor, link_id: int, clock: Clock) -> ShortLink:
    """Soft-delete a campaign link and its recipient links: they then answer a friendly 410 page."""
    actor.require(Scope.ACQUISITION_WRITE)
    link = get_link(session, workspace_id=actor.workspace_id, link_id=link_id)
    if link.parent_id is not None:
        raise InvalidInput("delete the campaign link; recipient links follow it", details={"field": "link_id"})
    now = clock.now()
    link.deleted_at = now
    session.execute(
        update(ShortLink)
        .where(
            ShortLink.workspace_id == actor.workspace_id, ShortLink.parent_id == link.id, ShortLink.deleted_at.is_(None)
        )
        .values(deleted_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    record(
        session,
        actor,
        action="delete",
        entity_type="short_link",
        entity_id=link.id,
        before=snapshot(link),
        clock=clock,
    )
    return link


def form_choices(session: Session, *, workspace_id: int) -> tuple[list[Channel], list[Experiment]]:
    """Channels (not archived) and experiments (not finished) a link may be attached to."""
    channels = session.scalars(
        select(Channel)
        .where(Channel.workspace_id == workspace_id, Channel.is_archived.is_(False))
        .order_by(Channel.name)
    ).all()
    experiments = session.scalars(
        select(Experiment)
        .where(Experiment.workspace_id == workspace_id, Experiment.status != ExperimentStatus.FINISHED)
        .order_by(Experiment.name)
    ).all()
    return list(channels), list(experiments)
