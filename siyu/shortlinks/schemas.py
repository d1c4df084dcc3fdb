"""API shapes of short links."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models import ShortLink
from siyu.shortlinks.stats import LinkStats


class ShortLinkCreate(Input):
    model_config = ConfigDict(extra="forbid")

    target_url: str = Field(max_length=4000, examples=["https://shop.example.com/sample?sku=42"])
    """Where the link goes: http or https, at most 2000 characters."""
    name: str | None = Field(default=None, max_length=100)
    campaign: str | None = Field(default=None, max_length=100, examples=["双11 包裹卡"])
    channel_id: DbId | None = None
    experiment_id: DbId | None = None
    """Split visitors across the experiment's variants (a variant's `content.target_url` overrides the target)."""
    utm: dict[str, str] = Field(default_factory=dict, examples=[{"utm_source": "sms", "utm_campaign": "1111"}])
    """utm_source / utm_medium / utm_campaign / utm_content / utm_term, appended on redirect."""
    expires_at: AwareDatetime | None = None
    slug: str | None = Field(default=None, max_length=64, description="Custom slug: 3-32 of A-Z a-z 0-9 _ -.")


class ShortLinkUpdate(Input):
    """Fields left out are kept; `expires_at: null` removes the expiry."""

    model_config = ConfigDict(extra="forbid")

    target_url: str | None = Field(default=None, max_length=4000)
    expires_at: AwareDatetime | None = None
    name: str | None = Field(default=None, max_length=100)


class RecipientsIn(Input):
    model_config = ConfigDict(extra="forbid")

    customer_ids: list[DbId] = Field(min_length=1, max_length=1000)


class ShortLinkRead(BaseModel):
    id: int
    slug: str
    url: str
    """The full short URL to send or print."""
    target_url: str
    name: str | None
    campaign: str | None
    channel_id: int | None
    experiment_id: int | None
    utm: dict[str, str]
    parent_id: int | None
    customer_id: int | None
    expires_at: datetime | None
    created_at: datetime
    clicks: int | None = None
    unique_visitors: int | None = None


class DayClicksRead(BaseModel):
    day: date
    clicks: int
    unique_visitors: int


class VariantClicksRead(BaseModel):
    key: str
    name: str
    clicks: int
    unique_visitors: int
    unique_customers: int


class StatsRead(BaseModel):
    total_clicks: int
    unique_visitors: int
    unique_customers: int
    recipients: int
    by_day: list[DayClicksRead]
    by_variant: list[VariantClicksRead]


class ShortLinkDetail(ShortLinkRead):
    stats: StatsRead


class ShortLinkPage(BaseModel):
    items: list[ShortLinkRead]
    next_cursor: str | None


class RecipientLinkRead(BaseModel):
    customer_id: int
    link_id: int
    slug: str
    url: str
    variant: str | None


class RecipientsRead(BaseModel):
    created: int
    links: list[RecipientLinkRead]


def short_url(base_url: str, slug: str) -> str:
    """The public URL of a slug on this installation ("https://siyu.example.com/s/Ab3dE9x")."""
    return f"{base_url.rstrip('/')}/s/{slug}"


def link_read(link: ShortLink, base_url: str, counts: tuple[int, int] | None = None) -> ShortLinkRead:
    return ShortLinkRead(
        id=link.id,
        slug=link.slug,
        url=short_url(base_url, link.slug),
        target_url=link.target_url,
        name=link.name,
        campaign=link.campaign,
        channel_id=link.channel_id,
        experiment_id=link.experiment_id,
        utm=dict(link.utm or {}),
        parent_id=link.parent_id,
        customer_id=link.customer_id,
        expires_at=link.expires_at,
        created_at=link.created_at,
        clicks=counts[0] if counts else None,
        unique_visitors=counts[1] if counts else None,
    )


def stats_read(stats: LinkStats) -> StatsRead:
    return StatsRead(
        total_clicks=stats.total_clicks,
        unique_visitors=stats.unique_visitors,
        unique_customers=stats.unique_customers,
        recipients=stats.recipients,
        by_day=[DayClicksRead(day=d.day, clicks=d.clicks, unique_visitors=d.unique_visitors) for d in stats.by_day],
        by_variant=[
            VariantClicksRead(
                key=v.key,
                name=v.name,
                clicks=v.clicks,
                unique_visitors=v.unique_visitors,
                unique_customers=v.unique_customers,
            )
            for v in stats.by_variant
        ],
    )
