"""The funnel's tables (steps, breakdown) and chart data, in the reader's language.

`translate` is the request's gettext; the API passes the identity, so its labels are Chinese.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from siyu.analytics.funnels.schemas import StepKind, StepSpec
from siyu.analytics.funnels.service import NONE_KEY, FunnelGroup, FunnelResult
from siyu.analytics.tables import Column, Kind, ReportTable, clean

Translate = Callable[[str], str]


def _same(text: str) -> str:
    return text


def step_label(spec: StepSpec, _: Translate = _same) -> str:
    """A short name for a step: "扫码", "私域第 1 单", "事件 page.view {"sku": "A1"}"…"""
    if spec.kind == StepKind.SCAN:
        return _("扫码")
    if spec.kind == StepKind.ADDED:
        return _("加为好友")
    if spec.kind == StepKind.JOINED_GROUP:
        return _("进入社群")
    if spec.kind == StepKind.ORDER:
        return _("任意订单") if spec.nth is None else _("私域第 %(n)s 单") % {"n": spec.nth}
    props = f" {json.dumps(dict(spec.properties), ensure_ascii=False)}" if spec.properties else ""
    return f"{_('事件')} {spec.event_type}{props}"


def group_label(group: FunnelGroup, _: Translate = _same) -> str:
    if group.key == NONE_KEY:
        return _("（未记录）")
    return group.label or f"#{group.key}"


def steps_table(result: FunnelResult, _: Translate = _same) -> ReportTable:
    """One row per step: customers, step-to-step and overall conversion, median hours from the previous step."""
    table = ReportTable(
        _("漏斗各步骤"),
        [
            Column("step", _("步骤")),
            Column("customers", _("人数"), Kind.INT),
            Column("step_conversion", _("步骤转化率"), Kind.RATE),
            Column("overall_conversion", _("总转化率"), Kind.RATE),
            Column("median_hours", _("中位耗时（小时）"), Kind.NUMBER),
        ],
    )
    if result.total.entered == 0:
        return table
    for spec, figures in zip(result.definition.steps, result.total.steps, strict=True):
        table.rows.append(
            {
                "step": f"{figures.number}. {step_label(spec, _)}",
                "customers": figures.customers,
                "step_conversion": figures.step_conversion,
                "overall_conversion": figures.overall_conversion,
                "median_hours": None if figures.median_hours is None else round(figures.median_hours, 2),
            }
        )
    return table


def breakdown_table(result: FunnelResult, _: Translate = _same) -> ReportTable:
    """One row per breakdown value: customers at each step and the overall conversion to the last step."""
    n = len(result.definition.steps)
    cols = [Column("value", _("分组"))]
    cols += [
        Column(f"step_{k}", f"{k}. {step_label(s, _)}", Kind.INT) for k, s in enumerate(result.definition.steps, 1)
    ]
    cols.append(Column("overall_conversion", _("总转化率"), Kind.RATE))
    table = ReportTable(_("漏斗分组对比"), cols)
    for group in result.breakdown:
        row: dict[str, Any] = {"value": group_label(group, _), "key": group.key}
        for figures in group.steps:
            row[f"step_{figures.number}"] = figures.customers
        row["overall_conversion"] = group.steps[n - 1].overall_conversion
        table.rows.append(row)
    return table


def chart_data(result: FunnelResult, _: Translate = _same) -> dict[str, Any]:
    """Horizontal bars: the step names (first on top) and their customer counts."""
    return {
        "labels": [
            f"{f.number}. {step_label(s, _)}" for s, f in zip(result.definition.steps, result.total.steps, strict=True)
        ],
        "counts": [f.customers for f in result.total.steps],
        "rates": [clean(f.overall_conversion) for f in result.total.steps],
    }


def result_json(result: FunnelResult) -> dict[str, Any]:
    """The API's body: the canonical definition, the period and the figures (no NaN, rates as fractions)."""

    def group(g: FunnelGroup) -> dict[str, Any]:
        return {
            "key": g.key,
            "label": g.label,
            "steps": [
                {
                    "step": f.number,
                    "customers": f.customers,
                    "step_conversion": clean(f.step_conversion),
                    "overall_conversion": clean(f.overall_conversion),
                    "median_hours": clean(f.median_hours),
                }
                for f in g.steps
            ],
        }

    return {
        "definition": result.definition.as_json(),
        "from": result.period.start.isoformat(),
        "to": result.period.end.isoformat(),
        "steps": [{"step": k, "label": step_label(s)} for k, s in enumerate(result.definition.steps, 1)],
        "total": group(result.total),
        "breakdown": [group(g) for g in result.breakdown],
    }
