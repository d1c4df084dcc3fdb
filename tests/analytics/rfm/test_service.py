"""RFM figures on the hand-built scenario (see scenario.py for the worked answer)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.analytics.rfm import reports
from siyu.analytics.rfm.naming import DEFAULT_RULES, default_document, parse_rules
from siyu.analytics.rfm.service import compute_rfm
from siyu.analytics.settings import current_settings, update_settings
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import AuditEntry, Role
from tests.analytics.rfm.scenario import build
from tests.factories import actor_for, make_workspace


def _plain(text: str) -> str:
    return text


def test_scores_segments_and_grid_on_the_scenario(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock, make_workspace(db, clock=clock))
    result = compute_rfm(db, actor=s.actor, clock=clock)
    by_id = {int(cid): i for i, cid in enumerate(result.customer_ids)}
    rows = {
        name: (
            int(result.recency_days[by_id[c.id]]),
            int(result.frequency[by_id[c.id]]),
            int(result.monetary_fen[by_id[c.id]]),
            int(result.r[by_id[c.id]]),
            int(result.f[by_id[c.id]]),
            int(result.m[by_id[c.id]]),
            result.rules[result.segment[by_id[c.id]]].key,
        )
        for name, c in (("A", s.a), ("B", s.b), ("C", s.c), ("D", s.d))
    }
    assert rows == {
        "A": (0, 2, 15_000, 5, 4, 3, "loyal"),
        "B": (10, 1, 30_000, 4, 2, 5, "loyal"),
        "C": (90, 1, 5_000, 3, 2, 2, "need_attention"),
        "D": (180, 3, 26_000, 2, 5, 4, "at_risk"),
    }
    assert (result.scored, result.no_recent_orders, result.revenue_fen) == (4, 2, 76_000)
    assert (result.window.start.isoformat(), result.window.end.isoformat()) == ("2025-11-24", "2026-11-23")
    counts, revenue = reports.grid_cells(result)
    assert {(r + 1, f + 1): int(counts[r, f]) for r in range(5) for f in range(5) if counts[r, f]} == {
        (5, 4): 1,
        (4, 2): 1,
        (3, 2): 1,
        (2, 5): 1,
    }
    assert int(revenue[1, 4]) == 26_000
    segments = {row["key"]: row for row in reports.segments_table(result, _plain).rows}
    # loyal: A + B → 2 of 4 customers, 45000 of 76000 fen, avg recency (0+10)/2, avg orders (2+1)/2
    assert segments["loyal"]["customers"] == 2
    assert segments["loyal"]["share"] == 0.5
    assert segments["loyal"]["revenue_fen"] == 45_000
    assert segments["loyal"]["avg_recency_days"] == 5.0
    assert segments["loyal"]["avg_frequency"] == 1.5
    assert segments["loyal"]["avg_monetary_fen"] == 22_500
    assert segments["champions"]["customers"] == 0
    assert segments["champions"]["avg_recency_days"] is None
    assert len(segments) == 11


def test_a_shorter_window_drops_old_orders(db: Session, clock: FrozenClock) -> None:
    # window 30 days: 2026-10-25 … 2026-11-23 → A (both orders) and B only; 4 others unscored
    s = build(db, clock, make_workspace(db, clock=clock))
    result = compute_rfm(db, actor=s.actor, clock=clock, window_days=30)
    assert sorted(result.customer_ids.tolist()) == sorted([s.a.id, s.b.id])
    assert result.no_recent_orders == 4
    # n = 2: R A 0 days → rank 2 → 5, B → rank 1 → ceil(2.5) = 3
    assert dict(zip(result.customer_ids.tolist(), result.r.tolist(), strict=True)) == {s.a.id: 5, s.b.id: 3}


def test_empty_workspace_has_no_scores_and_no_nan(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    result = compute_rfm(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    assert (result.scored, result.no_recent_orders, result.revenue_fen) == (0, 0, 0)
    table = reports.segments_table(result, _plain)
    assert all(row["share"] is None and row["avg_frequency"] is None for row in table.rows)
    assert table.footer is not None and table.footer["share"] is None


def test_bad_window_and_permission(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as bad:
        compute_rfm(db, actor=actor_for(ws), clock=clock, window_days=0)
    assert bad.value.details == {"field": "window_days"}
    with pytest.raises(PermissionDenied):
        compute_rfm(db, actor=actor_for(ws, role=Role.STAFF), clock=clock)


def test_naming_table_validation_names_the_entry() -> None:
    assert [rule.key for rule in parse_rules(default_document())] == [rule.key for rule in DEFAULT_RULES]
    missing = default_document()[:-1]  # without "lost": R1 × FM1 is not covered
    with pytest.raises(InvalidInput) as uncovered:
        parse_rules(missing)
    assert uncovered.value.details == {"field": "rfm_segments", "r": 1, "fm": 1.0}
    blank = default_document()
    blank[2]["name_zh"] = " "
    with pytest.raises(InvalidInput) as empty:
        parse_rules(blank)
    assert empty.value.details == {"field": "rfm_segments[2].name_zh"}
    wide = default_document()
    wide[0]["r"] = [0, 5]
    with pytest.raises(InvalidInput) as bounds:
        parse_rules(wide)
    assert bounds.value.details == {"field": "rfm_segments[0].r"}


def test_custom_naming_table_is_used(db: Session, clock: FrozenClock) -> None:
    # given a two-rule table: recent (R 4–5) vs everyone else
    s = build(db, clock, make_workspace(db, clock=clock))
    table = [
        {"key": "recent", "name_en": "Recent", "name_zh": "近期", "r": [4, 5], "fm": [1, 5]},
        {"key": "rest", "name_en": "Rest", "name_zh": "其他", "r": [1, 5], "fm": [1, 5]},
    ]
    update_settings(db, actor=s.actor, changes={"rfm_segments": table}, clock=clock)
    result = compute_rfm(db, actor=s.actor, clock=clock)
    counts = {row["key"]: row["customers"] for row in reports.segments_table(result, _plain).rows}
    assert counts == {"recent": 2, "rest": 2}  # A (R5), B (R4) | C (R3), D (R2)


def test_update_settings_validates_and_audits(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    with pytest.raises(InvalidInput) as bad:
        update_settings(db, actor=actor, changes={"rfm_window_days": 30, "clv_time_unit": "month"}, clock=clock)
    assert bad.value.details == {"field": "clv_time_unit"}
    assert current_settings(db, ws.id, clock).id is None  # nothing written
    row = update_settings(db, actor=actor, changes={"rfm_window_days": 90, "gross_margin_bp": 4500}, clock=clock)
    assert (row.rfm_window_days, row.gross_margin_bp, row.super_user_top_pct) == (90, 4500, 20)
    audits = db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.entity_type == "analytics_settings")
    )
    assert audits == 1
    with pytest.raises(PermissionDenied):
        update_settings(db, actor=actor_for(ws, role=Role.STAFF), changes={"rfm_window_days": 9}, clock=clock)
