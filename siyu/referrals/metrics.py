"""Program metrics per brand-local period, with the K-factor and cost per referred customer.

Definitions (see docs/referrals.md):
- shares: share visits (a member reported sharing); scans: *distinct* (code, visitor, brand-local day)
  scan visits — reloads of a link by the same visitor the same day count once; views are ignored;
- invites = shares + scans; inviting_members: distinct members with a share or scan;
- members: members who took a code in the period; code_holders: members holding a code of the
  program at the end of the period (codes created up to then);
- referred: referrals attributed (not rejected); qualified (the conversions): referrals that
  qualified in the period and still are;
- K = (invites / code_holders) × (qualified / invites), 0 when either is 0; rounded to 4 places;
- cost_fen: rewards issued in the period, not reversed, not failed; cost_per_referred_fen =
  cost_fen // referred.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.errors import InvalidInput
from siyu.loyalty.program import brand_zone, local_midnight
from siyu.models import Referral, ReferralCode, ReferralReward, ReferralStatus, ReferralVisit, VisitKind
from siyu.referrals.programs import get_program

PERIODS = ("day", "week", "month")
MAX_DAYS = 731


@dataclass
class PeriodMetrics:
    """One period's numbers (`period_start` is the period's first brand-local day)."""

    period_start: date
    shares: int = 0
    scans: int = 0
    invites: int = 0
    inviting_members: int = 0
    members: int = 0
    code_holders: int = 0
    referred: int = 0
    qualified: int = 0
    k_factor: float = 0.0
    cost_fen: int = 0
    cost_per_referred_fen: int | None = None


@dataclass
class ProgramMetrics:
    """Totals over [start, end] and the per-period rows."""

    program_id: int
    start: date
    end: date
    period: str
    totals: PeriodMetrics
    rows: list[PeriodMetrics] = field(default_factory=list)


def _period_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def _next_period(first: date, period: str) -> date:
    if period == "week":
        return first + timedelta(days=7)
    if period == "month":
        return (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first + timedelta(days=1)


def k_factor(invites: int, code_holders: int, conversions: int) -> float:
    """K = (invites ÷ members who hold a code) × (conversions ÷ invites), 0 when either divisor is 0."""
    if not invites or not code_holders:
        return 0.0
    return round((invites / code_holders) * (conversions / invites), 4)


def _finish(row: PeriodMetrics, inviters: set[int]) -> PeriodMetrics:
    row.invites = row.shares + row.scans
    row.inviting_members = len(inviters)
    row.k_factor = k_factor(row.invites, row.code_holders, row.qualified)
    row.cost_per_referred_fen = row.cost_fen // row.referred if row.referred else None
    return row


def _bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return local_midnight(start, zone), local_midnight(end + timedelta(days=1), zone)


def program_metrics(
    session: Session, *, actor: Actor, program_id: int, start: date, end: date, period: str = "week"
) -> ProgramMetrics:
    """The program's funnel per period between two brand-local dates (inclusive); growth:read."""
    program = get_program(session, actor=actor, program_id=program_id)
    if period not in PERIODS:
        raise InvalidInput(f"period must be one of {', '.join(PERIODS)}", details={"field": "period"})
    if end < start:
        raise InvalidInput("end must not be before start", details={"field": "end"})
    if (end - start).days > MAX_DAYS:
        raise InvalidInput(f"at most {MAX_DAYS} days", details={"field": "end"})
    zone = brand_zone(session, program.workspace_id)
    lo, hi = _bounds(start, end, zone)

    buckets: dict[date, PeriodMetrics] = {}
    inviters: dict[date, set[int]] = defaultdict(set)
    all_inviters: set[int] = set()
    day = start
    while day <= end:
        first = _period_start(day, period)
        buckets.setdefault(first, PeriodMetrics(period_start=first))
        day += timedelta(days=1)

    def key(at: datetime) -> date:
        return _period_start(at.astimezone(zone).date(), period)

    visits = session.execute(
        select(
            ReferralVisit.id,
            ReferralVisit.kind,
            ReferralVisit.occurred_at,
            ReferralVisit.code_id,
            ReferralVisit.visitor_id,
            ReferralCode.customer_id,
        )
        .join(ReferralCode, ReferralCode.id == ReferralVisit.code_id)
        .where(
            ReferralVisit.program_id == program.id,
            ReferralVisit.kind.in_([VisitKind.SHARE, VisitKind.SCAN]),
            ReferralVisit.occurred_at >= lo,
            ReferralVisit.occurred_at < hi,
        )
    )
    seen_scans: set[tuple[int, str, date]] = set()
    for visit_id, kind, at, code_id, visitor, customer_id in visits:
        row = buckets[key(at)]
        if kind == VisitKind.SHARE:
            row.shares += 1
        else:
            scan = (code_id, visitor or f"#{visit_id}", at.astimezone(zone).date())
            if scan in seen_scans:
                continue  # the same visitor reloading the link the same day: not a new invite
            seen_scans.add(scan)
            row.scans += 1
        inviters[row.period_start].add(customer_id)
        all_inviters.add(customer_id)
    created = [
        at
        for (at,) in session.execute(
            select(ReferralCode.created_at).where(ReferralCode.program_id == program.id, ReferralCode.created_at < hi)
        )
    ]
    for at in created:
        if at >= lo:
            buckets[key(at)].members += 1
    created.sort()
    for first, row in buckets.items():
        _lo, until = _bounds(first, min(_next_period(first, period), end + timedelta(days=1)) - timedelta(days=1), zone)
        row.code_holders = bisect_left(created, until)
    for status, attributed, qualified_at in session.execute(
        select(Referral.status, Referral.attributed_at, Referral.qualified_at).where(
            Referral.program_id == program.id,
            ((Referral.attributed_at >= lo) & (Referral.attributed_at < hi))
            | ((Referral.qualified_at >= lo) & (Referral.qualified_at < hi)),
        )
    ):
        if lo <= attributed < hi and status != ReferralStatus.REJECTED:
            buckets[key(attributed)].referred += 1
        if status == ReferralStatus.QUALIFIED and qualified_at is not None and lo <= qualified_at < hi:
            buckets[key(qualified_at)].qualified += 1
    for cost, at in session.execute(
        select(ReferralReward.cost_fen, ReferralReward.issued_at).where(
            ReferralReward.program_id == program.id,
            ReferralReward.reversed_at.is_(None),
            ReferralReward.failed_at.is_(None),
            ReferralReward.issued_at >= lo,
            ReferralReward.issued_at < hi,
        )
    ):
        buckets[key(at)].cost_fen += int(cost)

    ordered = [_finish(buckets[d], inviters[d]) for d in sorted(buckets)]
    totals = PeriodMetrics(period_start=start, code_holders=len(created))
    for row in ordered:
        for name in ("shares", "scans", "members", "referred", "qualified", "cost_fen"):
            setattr(totals, name, getattr(totals, name) + getattr(row, name))
    return ProgramMetrics(
        program_id=program.id,
        start=start,
        end=end,
        period=period,
        totals=_finish(totals, all_inviters),
        rows=ordered,
    )
