"""HTTP API of short links: create, list, read with stats, change, delete, per-recipient links."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput
from siyu.shortlinks import service
from siyu.shortlinks.schemas import (
    RecipientLinkRead,
    RecipientsIn,
    RecipientsRead,
    ShortLinkCreate,
    ShortLinkDetail,
    ShortLinkPage,
    ShortLinkRead,
    ShortLinkUpdate,
    link_read,
    short_url,
    stats_read,
)
from siyu.shortlinks.stats import DEFAULT_DAYS, MAX_DAYS, link_stats
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["shortlinks"])
Reader = Annotated[Ctx, Depends(require(Scope.ACQUISITION_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ACQUISITION_WRITE))]


def _base(request: Request) -> str:
    return str(request.base_url)


@router.post("/short-links", status_code=201, response_model=ShortLinkRead)
def create_short_link(body: ShortLinkCreate, ctx: Writer, request: Request) -> ShortLinkRead:
    """Create a campaign link; its public URL is `url` (`/s/{slug}`)."""
    link = service.create_link(
        ctx.session,
        actor=ctx.actor,
        target_url=body.target_url,
        name=body.name,
        campaign=body.campaign,
        channel_id=body.channel_id,
        experiment_id=body.experiment_id,
        utm=body.utm,
        expires_at=body.expires_at,
        slug=body.slug,
        clock=ctx.clock,
    )
    return link_read(link, _base(request), (0, 0))


@router.get("/short-links", response_model=ShortLinkPage)
def list_short_links(
    ctx: Reader,
    request: Request,
    campaign: Annotated[str | None, Query(max_length=100)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ShortLinkPage:
    """Campaign links, newest first, with their clicks and unique visitors (recipient links included)."""
    page = service.list_links(
        ctx.session, workspace_id=ctx.actor.workspace_id, cursor=cursor, limit=limit, campaign=campaign
    )
    counts = service.click_counts(
        ctx.session, workspace_id=ctx.actor.workspace_id, link_ids=[link.id for link in page.items]
    )
    return ShortLinkPage(
        items=[link_read(link, _base(request), counts.get(link.id, (0, 0))) for link in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/short-links/{link_id}", response_model=ShortLinkDetail)
def get_short_link(
    link_id: IdPath, ctx: Reader, request: Request, days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = DEFAULT_DAYS
) -> ShortLinkDetail:
    """A link and its stats: totals, uniques, clicks per brand-local day and per variant."""
    link = service.get_link(ctx.session, workspace_id=ctx.actor.workspace_id, link_id=link_id)
    stats = link_stats(ctx.session, workspace_id=ctx.actor.workspace_id, link_id=link.id, clock=ctx.clock, days=days)
    base = link_read(link, _base(request), (stats.total_clicks, stats.unique_visitors)).model_dump()
    return ShortLinkDetail(**base, stats=stats_read(stats))


@router.patch("/short-links/{link_id}", response_model=ShortLinkRead)
def update_short_link(link_id: IdPath, body: ShortLinkUpdate, ctx: Writer, request: Request) -> ShortLinkRead:
    """Change the target, the expiry (`null` removes it) or the name; recipient links follow."""
    given = body.model_fields_set
    if "target_url" in given and body.target_url is None:
        raise InvalidInput("target_url cannot be removed", details={"field": "target_url"})
    link = service.update_link(
        ctx.session,
        actor=ctx.actor,
        link_id=link_id,
        clock=ctx.clock,
        target_url=body.target_url if body.target_url is not None else service.KEEP,
        expires_at=body.expires_at if "expires_at" in given else service.KEEP,
        name=body.name if "name" in given else service.KEEP,
    )
    return link_read(link, _base(request))


@router.delete("/short-links/{link_id}")
def delete_short_link(link_id: IdPath, ctx: Writer) -> dict[str, Any]:
    """Soft-delete: the link and its recipient links answer a friendly "link removed" page (410)."""
    link = service.delete_link(ctx.session, actor=ctx.actor, link_id=link_id, clock=ctx.clock)
    return {"id": link.id, "deleted_at": link.deleted_at}


@router.post("/short-links/{link_id}/recipients", response_model=RecipientsRead)
def recipient_links(link_id: IdPath, body: RecipientsIn, ctx: Writer, request: Request) -> RecipientsRead:
    """Per-recipient links for these customers (idempotent: the same customer gets the same URL)."""
    made = service.create_recipient_links(
        ctx.session, actor=ctx.actor, link_id=link_id, customer_ids=list(body.customer_ids), clock=ctx.clock
    )
    parent = service.get_link(ctx.session, workspace_id=ctx.actor.workspace_id, link_id=link_id)
    variants = service.recipient_variants(ctx.session, link=parent, customer_ids=list(made.links))
    return RecipientsRead(
        created=made.created,
        links=[
            RecipientLinkRead(
                customer_id=customer_id,
                link_id=link.id,
                slug=link.slug,
                url=short_url(_base(request), link.slug),
                variant=variants.get(customer_id),
            )
            for customer_id, link in made.links.items()
        ],
    )
