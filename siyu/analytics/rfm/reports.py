"""The RFM figures as report tables (grid, named segments, per-customer scores) and the drill cells."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.periods import parse_whole
from siyu.analytics.rfm.service import RfmResult, unscored_ids
from siyu.analytics.tables import MAX_XLSX_ROWS, Column, Kind, ReportTable, columns, ratio
from siyu.auth.permissions import Actor
from siyu.kit.errors import InvalidInput
from siyu.models import Customer

Gettext = Callable[[str], str]
EPOCH = date(1970, 1, 1)


def rule_name(rule_zh: str, rule_en: str, english: bool) -> str:
    return rule_en if english else rule_zh


def grid_cells(result: RfmResult) -> tuple[np.ndarray, np.ndarray]:
    """Counts and revenue (fen) as 5 × 5 arrays indexed [R − 1, F − 1]."""
    index = (result.r.astype(np.int64) - 1) * 5 + (result.f.astype(np.int64) - 1)
    counts = np.bincount(index, minlength=25).reshape(5, 5)
    revenue = np.bincount(index, weights=result.monetary_fen, minlength=25).reshape(5, 5)
    return counts, revenue


def grid_table(result: RfmResult, _: Gettext) -> ReportTable:
    """One row per R × F cell (R 5 first): customers, share of the scored, revenue."""
    counts, revenue = grid_cells(result)
    table = ReportTable(
        _("R × F 分布"),
        columns(
            ("r", "R", Kind.INT),
            ("f", "F", Kind.INT),
            ("customers", _("客户数"), Kind.INT),
            ("share", _("客户占比"), Kind.RATE),
            ("revenue_fen", _("消费金额"), Kind.FEN),
        ),
    )
    for r in range(5, 0, -1):
        for f in range(1, 6):
            n = int(counts[r - 1, f - 1])
            table.rows.append(
                {
                    "r": r,
                    "f": f,
                    "customers": n,
                    "share": ratio(n, result.scored),
                    "revenue_fen": int(revenue[r - 1, f - 1]),
                }
            )
    return table


def segments_table(result: RfmResult, _: Gettext, *, english: bool = False) -> ReportTable:
    """One row per named segment (every rule, even empty) and a row for "no recent orders"."""
    table = ReportTable(
        _("RFM 分群"),
        columns(
            ("key", _("分群代码")),
            ("name", _("RFM 分群名")),
            ("customers", _("客户数"), Kind.INT),
            ("share", _("客户占比"), Kind.RATE),
            ("revenue_fen", _("消费金额"), Kind.FEN),
            ("revenue_share", _("消费金额占比"), Kind.RATE),
            ("avg_recency_days", _("平均最近购买天数"), Kind.NUMBER),
            ("avg_frequency", _("平均订单数"), Kind.NUMBER),
            ("avg_monetary_fen", _("平均每人消费金额"), Kind.FEN),
        ),
    )
    total_revenue = result.revenue_fen
    for index, rule in enumerate(result.rules):
        mask = result.segment == index
        n = int(mask.sum())
        revenue = int(result.monetary_fen[mask].sum())
        table.rows.append(
            {
                "key": rule.key,
                "name": rule_name(rule.name_zh, rule.name_en, english),
                "customers": n,
                "share": ratio(n, result.scored),
                "revenue_fen": revenue,
                "revenue_share": ratio(revenue, total_revenue),
                "avg_recency_days": float(result.recency_days[mask].mean()) if n else None,
                "avg_frequency": float(result.frequency[mask].mean()) if n else None,
                "avg_monetary_fen": round(revenue / n) if n else None,
            }
        )
    table.footer = {
        "key": "",
        "name": _("合计"),
        "customers": result.scored,
        "share": 1.0 if result.scored else None,
        "revenue_fen": total_revenue,
        "revenue_share": 1.0 if result.scored else None,
        "avg_recency_days": float(result.recency_days.mean()) if result.scored else None,
        "avg_frequency": float(result.frequency.mean()) if result.scored else None,
        "avg_monetary_fen": round(total_revenue / result.scored) if result.scored else None,
    }
    return table


_CHUNK = 5000


def customer_columns(_: Gettext) -> list[Column]:
    return columns(
        ("customer_id", _("客户 ID"), Kind.INT),
        ("name", _("姓名")),
        ("last_order_day", _("最近一次购买日"), Kind.DATE),
        ("recency_days", _("最近购买天数"), Kind.INT),
        ("frequency", _("订单数"), Kind.INT),
        ("monetary_fen", _("消费金额"), Kind.FEN),
        ("r", "R", Kind.INT),
        ("f", "F", Kind.INT),
        ("m", "M", Kind.INT),
        ("segment", _("RFM 分群名")),
    )


def listed_customers(result: RfmResult) -> int:
    """Rows of the per-customer export: the scored customers that are not erased."""
    return int(result.listable.sum())


def _customer_chunks(
    session: Session, *, actor: Actor, result: RfmResult, english: bool
) -> Iterator[list[dict[str, Any]]]:
    """The per-customer rows (erased customers left out), in customer-id order, 5,000 at a time."""
    labels = [rule_name(rule.name_zh, rule.name_en, english) for rule in result.rules]
    positions = np.flatnonzero(result.listable)
    for start in range(0, positions.size, _CHUNK):
        chunk = positions[start : start + _CHUNK]
        ids = result.customer_ids[chunk].tolist()
        names: dict[int, str | None] = {
            cid: name
            for cid, name in session.execute(
                select(Customer.id, Customer.name).where(
                    Customer.workspace_id == actor.workspace_id, Customer.id.in_(ids), Customer.erased_at.is_(None)
                )
            )
        }
        rows = []
        for i, cid in zip(chunk.tolist(), ids, strict=True):
            seg = int(result.segment[i])
            rows.append(
                {
                    "customer_id": cid,
                    "name": names.get(cid),
                    "last_order_day": EPOCH + timedelta(days=int(result.last_order_day[i])),
                    "recency_days": int(result.recency_days[i]),
                    "frequency": int(result.frequency[i]),
                    "monetary_fen": int(result.monetary_fen[i]),
                    "r": int(result.r[i]),
                    "f": int(result.f[i]),
                    "m": int(result.m[i]),
                    "segment": labels[seg] if seg >= 0 else None,
                }
            )
        yield rows


def customer_rows(
    session: Session, *, actor: Actor, result: RfmResult, english: bool = False
) -> Iterator[dict[str, Any]]:
    """The per-customer rows one by one (names read 5,000 at a time), for the streamed CSV."""
    for rows in _customer_chunks(session, actor=actor, result=result, english=english):
        yield from rows


def customers_table(
    session: Session, *, actor: Actor, result: RfmResult, _: Gettext, english: bool = False
) -> ReportTable:
    """Every scored customer that is not erased, with their figures and scores (for XLSX: the rows
    are held in memory, so more than `MAX_XLSX_ROWS` is an `InvalidInput` on "format")."""
    if listed_customers(result) > MAX_XLSX_ROWS:
        raise InvalidInput(
            f"format xlsx holds at most {MAX_XLSX_ROWS:,} customers: use format=csv",
            details={"field": "format"},
        )
    table = ReportTable(_("客户 RFM 得分"), customer_columns(_))
    table.rows.extend(customer_rows(session, actor=actor, result=result, english=english))
    return table


def _score(value: object, field: str) -> int:
    return parse_whole(None if value is None else str(value), field, low=1, high=5)


def drill_target(
    session: Session,
    *,
    actor: Actor,
    result: RfmResult,
    r: object = None,
    f: object = None,
    segment: str | None = None,
    no_recent_orders: bool = False,
    english: bool = False,
) -> tuple[str, str, list[int]]:
    """(segment name, source, customer ids) of one grid cell, named segment or the unscored group;
    erased customers are never among the ids (they count in the grid but are not listed)."""
    window = f"{result.window.start.isoformat()}~{result.window.end.isoformat()}"
    if no_recent_orders:
        return (
            f"RFM 无近期订单 {window}",
            "analytics:rfm:no_recent_orders",
            unscored_ids(session, actor=actor, result=result),
        )
    if segment:
        mask = result.segment_mask(segment) & result.listable
        rule = next(rule for rule in result.rules if rule.key == segment)
        label = rule_name(rule.name_zh, rule.name_en, english)
        return f"RFM {label} {window}", f"analytics:rfm:segment:{segment}", result.customer_ids[mask].tolist()
    r_score, f_score = _score(r, "r"), _score(f, "f")
    mask = result.cell_mask(r_score, f_score) & result.listable
    return (
        f"RFM R{r_score}F{f_score} {window}",
        f"analytics:rfm:cell:r{r_score}f{f_score}",
        result.customer_ids[mask].tolist(),
    )
