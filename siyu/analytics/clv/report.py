"""The CLV page's tables (Pareto, hold-out validation, top customers), shared by the page and its exports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from siyu.analytics.clv.schemas import ParetoResult
from siyu.analytics.clv.service import ValueRow
from siyu.analytics.tables import Column, Kind, ReportTable, columns
from siyu.models import ClvFit

Translate = Callable[[str], str]


def pareto_report(result: ParetoResult, _: Translate) -> ReportTable:
    return ReportTable(
        title=_("帕累托：头部客户贡献的收入"),
        columns=columns(
            ("top", _("头部客户"), Kind.TEXT),
            ("customers", _("购买客户数"), Kind.INT),
            ("revenue_fen", _("收入"), Kind.FEN),
            ("share", _("收入占比"), Kind.RATE),
            ("multiple", _("人均是其余购买客户的倍数"), Kind.NUMBER),
            ("pool_customers", _("头部人数（全部客户）"), Kind.INT),
            ("pool_share", _("收入占比（全部客户）"), Kind.RATE),
        ),
        rows=[
            {
                "top": f"Top {row.top_pct}%",
                "customers": row.customers,
                "revenue_fen": row.revenue_fen,
                "share": row.share,
                "multiple": None if row.multiple is None else round(row.multiple, 2),
                "pool_customers": row.pool_customers,
                "pool_share": row.pool_share,
            }
            for row in result.rows
        ]
        if result.buyers
        else [],
    )


def validation_report(fit: ClvFit | None, _: Translate) -> ReportTable:
    buckets: list[dict[str, Any]] = []
    if fit is not None and fit.validation and "buckets" in fit.validation:
        buckets = list(fit.validation["buckets"])
    return ReportTable(
        title=_("留出期验证：预测与实际购买次数"),
        columns=columns(
            ("label", _("校准期复购次数"), Kind.TEXT),
            ("customers", _("客户数"), Kind.INT),
            ("predicted", _("预测人均购买"), Kind.NUMBER),
            ("actual", _("实际人均购买"), Kind.NUMBER),
        ),
        rows=[dict(b) for b in buckets],
    )


def customers_columns(_: Translate) -> list[Column]:
    return columns(
        ("rank", _("排名"), Kind.INT),
        ("customer_id", _("客户 ID"), Kind.TEXT),
        ("name", _("姓名"), Kind.TEXT),
        ("frequency", _("复购天数"), Kind.INT),
        ("expected_purchases", _("预测购买次数"), Kind.NUMBER),
        ("p_alive", _("仍活跃概率"), Kind.RATE),
        ("expected_spend_fen", _("预测客单价"), Kind.FEN),
        ("expected_value_fen", _("预测价值"), Kind.FEN),
        ("super_user", _("超级用户"), Kind.TEXT),
    )


def customer_row(r: ValueRow) -> dict[str, Any]:
    """One customer's cells (erased customers without a name)."""
    return {
        "rank": r.value.value_rank,
        "customer_id": str(r.value.customer_id),
        "name": r.name or "",
        "frequency": r.value.frequency,
        "expected_purchases": r.value.expected_purchases,
        "p_alive": r.value.p_alive,
        "expected_spend_fen": r.value.expected_spend_fen,
        "expected_value_fen": r.value.expected_value_fen,
        "super_user": "✓" if r.value.is_super_user else "",
    }


def customers_report(rows: Iterable[ValueRow], _: Translate) -> ReportTable:
    return ReportTable(
        title=_("预测价值最高的客户"), columns=customers_columns(_), rows=[customer_row(r) for r in rows]
    )
