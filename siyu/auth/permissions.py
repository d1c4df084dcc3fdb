"""Scopes, what each role may do, and the `Actor` every service call acts as."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from siyu.kit.errors import PermissionDenied
from siyu.models.user import Role


class Scope(StrEnum):
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    CUSTOMERS_PII = "customers:pii"
    """See phone numbers and e-mail whole; without it they are masked."""
    CUSTOMERS_ERASE = "customers:erase"
    """Erase or export one person's data (PIPL requests)."""
    CUSTOMERS_MERGE = "customers:merge"
    TAGS_WRITE = "tags:write"
    """Tag and untag customers in bulk."""
    TAGS_MANAGE = "tags:manage"
    """Create and delete tag groups and tags (deleting a tag removes it from every customer)."""
    IMPORT_RUN = "import:run"
    EVENTS_WRITE = "events:write"
    ORG_WRITE = "org:write"
    USERS_ADMIN = "users:admin"
    TOKENS_ADMIN = "tokens:admin"
    AUDIT_READ = "audit:read"
    JOBS_READ = "jobs:read"
    ACQUISITION_READ = "acquisition:read"
    """See channels, live codes, short links, experiments, add-by-phone lists and their metrics."""
    ACQUISITION_WRITE = "acquisition:write"
    """Create and change channels, costs, live codes, short links, experiments and add-by-phone lists."""
    SEGMENTS_READ = "segments:read"
    """See segments, preview them and list or export their members (within the role's part of the pool)."""
    SEGMENTS_WRITE = "segments:write"
    """Create, change, refresh and archive segments, and upload static member lists."""
    TOUCH_READ = "touch:read"
    """See channel accounts (never their secrets), content, broadcasts, SOPs, calendars and results."""
    TOUCH_WRITE = "touch:write"
    """Create and change content, broadcasts, SOPs and calendars, and send broadcasts."""
    TOUCH_CHANNELS = "touch:channels"
    """Create channel accounts, set their credentials and the delivery policy."""
    TOUCH_APPROVE = "touch:approve"
    """Approve broadcasts whose audience is over the approval threshold."""
    COMMERCE_READ = "commerce:read"
    """See products, orders, refunds and coupons (staff and store managers: of their customers only)."""
    COMMERCE_WRITE = "commerce:write"
    """Ingest and import orders, record refunds, manage products, coupon templates and issue coupons."""
    COMMERCE_SETTINGS = "commerce:settings"
    """Set the unknown-customer policy and rotate the order webhook's secret."""
    LOYALTY_READ = "loyalty:read"
    """See the loyalty program, tiers, members' points and tier history, tasks, rewards and redemptions."""
    LOYALTY_WRITE = "loyalty:write"
    """Change the program (points, expiry, tier rules), tasks and rewards; sell paid tiers."""
    LOYALTY_ADJUST = "loyalty:adjust"
    """Adjust a member's points by hand (with a reason) and change a tier by hand."""
    LOYALTY_FULFIL = "loyalty:fulfil"
    """Ship, deliver and cancel redemptions of physical gifts."""
    GROWTH_READ = "growth:read"
    """See referral programs, the referral tree, metrics, commission, lotteries and the KOC pipeline."""
    GROWTH_WRITE = "growth:write"
    """Change referral programs, commission rules, lotteries and questionnaires; run draws."""
    GROWTH_REVIEW = "growth:review"
    """Approve or reject flagged referrals and KOC applications; settle commission statements."""
    COMMUNITY_READ = "community:read"
    """See groups and their members, the resources library, challenges and posts."""
    COMMUNITY_WRITE = "community:write"
    """Manage groups, members and group tags, resources and challenges."""
    COMMUNITY_MODERATE = "community:moderate"
    """Feature, hide and reward members' posts."""
    ANALYTICS_READ = "analytics:read"
    """See the measure pages: overview, funnels, retention, RFM, CLV, ROI, staff performance, KPI plans."""
    ANALYTICS_WRITE = "analytics:write"
    """Save funnels and cohort reports, change analytics settings, fit CLV, plan KPIs, and turn any
    figure into a static segment of the customers behind it."""
    INTEGRATIONS_READ = "integrations:read"
    """See the WeCom / official-account integration pages: connection, events received, sync runs, errors."""
    INTEGRATIONS_WRITE = "integrations:write"
    """Run syncs, push live codes and tags to WeCom, and hand customers over between staff (离职/在职继承)."""
    INTEGRATIONS_MANAGE = "integrations:manage"
    """Configure the corp and the official account: ids and secrets (admins only by default)."""


ALL_SCOPES = frozenset(Scope)

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: ALL_SCOPES,
    Role.OPERATOR: frozenset(
        {
            Scope.CUSTOMERS_READ,
            Scope.CUSTOMERS_WRITE,
            Scope.CUSTOMERS_PII,
            Scope.CUSTOMERS_MERGE,
            Scope.TAGS_WRITE,
            Scope.TAGS_MANAGE,
            Scope.IMPORT_RUN,
            Scope.EVENTS_WRITE,
            Scope.JOBS_READ,
            Scope.ACQUISITION_READ,
            Scope.ACQUISITION_WRITE,
            Scope.SEGMENTS_READ,
            Scope.SEGMENTS_WRITE,
            Scope.TOUCH_READ,
            Scope.TOUCH_WRITE,
            Scope.COMMERCE_READ,
            Scope.COMMERCE_WRITE,
            Scope.LOYALTY_READ,
            Scope.LOYALTY_WRITE,
            Scope.LOYALTY_ADJUST,
            Scope.LOYALTY_FULFIL,
            Scope.GROWTH_READ,
            Scope.GROWTH_WRITE,
            Scope.GROWTH_REVIEW,
            Scope.COMMUNITY_READ,
            Scope.COMMUNITY_WRITE,
            Scope.COMMUNITY_MODERATE,
            Scope.ANALYTICS_READ,
            Scope.ANALYTICS_WRITE,
            Scope.INTEGRATIONS_READ,
            Scope.INTEGRATIONS_WRITE,
        }
    ),
    Role.ANALYST: frozenset(
        {
            Scope.ANALYTICS_READ,
            Scope.ANALYTICS_WRITE,
            Scope.CUSTOMERS_READ,
            Scope.JOBS_READ,
            Scope.ACQUISITION_READ,
            Scope.SEGMENTS_READ,
            Scope.TOUCH_READ,
            Scope.COMMERCE_READ,
            Scope.LOYALTY_READ,
            Scope.GROWTH_READ,
            Scope.COMMUNITY_READ,
        }
    ),
    Role.STORE_MANAGER: frozenset(
        {
            Scope.CUSTOMERS_READ,
            Scope.CUSTOMERS_WRITE,
            Scope.CUSTOMERS_PII,
            Scope.TAGS_WRITE,
            Scope.SEGMENTS_READ,
            Scope.COMMERCE_READ,
            Scope.LOYALTY_READ,
            Scope.LOYALTY_FULFIL,
            Scope.COMMUNITY_READ,
            Scope.COMMUNITY_MODERATE,
        }
    ),
    Role.STAFF: frozenset(
        {
            Scope.CUSTOMERS_READ,
            Scope.CUSTOMERS_WRITE,
            Scope.CUSTOMERS_PII,
            Scope.COMMERCE_READ,
            Scope.LOYALTY_READ,
            Scope.COMMUNITY_READ,
        }
    ),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a console user in a workspace, an API token, or the system itself."""

    kind: str  # "user", "token" or "system"
    workspace_id: int
    label: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    user_id: int | None = None
    token_id: int | None = None
    role: Role | None = None
    staff_id: int | None = None
    """Role staff: sees only customers owned by this staff member."""
    store_id: int | None = None
    """Role store_manager: sees only customers owned by staff of this store."""

    @classmethod
    def system(cls, workspace_id: int, label: str = "system") -> Actor:
        return cls(kind="system", workspace_id=workspace_id, label=label, scopes=ALL_SCOPES)

    def can(self, scope: Scope | str) -> bool:
        return str(scope) in self.scopes

    def require(self, scope: Scope | str) -> None:
        """Raise `PermissionDenied` (403) unless the actor holds `scope`."""
        if not self.can(scope):
            raise PermissionDenied(f"missing permission {scope}", details={"scope": str(scope)})

    @property
    def sees_whole_pool(self) -> bool:
        """False for staff and store managers, whose view is limited to their customers."""
        return self.role not in (Role.STAFF, Role.STORE_MANAGER)
