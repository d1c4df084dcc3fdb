"""The three reports as `ReportTable`s: what the pages show, the API returns and the exports hold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from siyu.analytics.performance.campaigns import CampaignResult
from siyu.analytics.performance.roi import WINDOWS, RoiResult
from siyu.analytics.performance.staff import StaffResult
from siyu.analytics.tables import Column, Kind, ReportTable, columns

Gettext = Callable[[str], str]


def _same(text: str) -> str:
    return text


def roi_table(result: RoiResult, _: Gettext = _same) -> ReportTable:
    """One row per channel; N-day cells are None ("未满 N 天" on the page) until a cohort is N days old."""
    cols = columns(
        ("channel", _("渠道"), Kind.TEXT),
        ("adds", _("添加"), Kind.INT),
        ("cost_fen", _("花费"), Kind.FEN),
        ("cac_fen", _("获客成本"), Kind.FEN),
        ("first_orders", _("首单"), Kind.INT),
        ("gmv_fen", _("归因 GMV"), Kind.FEN),
        ("roi", _("ROI"), Kind.NUMBER),
        ("acquired", _("新获客户"), Kind.INT),
        ("cost_per_acquired_fen", _("每位新获客户成本"), Kind.FEN),
    )
    cols += [Column(f"gmv_{n}d_fen", _("%(days)s 天客均 GMV") % {"days": n}, Kind.FEN) for n in WINDOWS]
    cols.append(Column("payback_days", _("回本天数"), Kind.INT))
    rows: list[dict[str, Any]] = []
    for c in result.channels:
        row: dict[str, Any] = {
            "channel_id": c.channel_id,
            "channel": c.name,
            "adds": c.adds,
            "cost_fen": c.cost_fen,
            "cac_fen": c.cac_fen,
            "first_orders": c.first_orders,
            "gmv_fen": c.gmv_fen,
            "roi": c.roi,
            "acquired": c.acquired,
            "cost_per_acquired_fen": c.cost_per_acquired_fen,
            "payback_days": c.payback_days,
        }
        for n in WINDOWS:
            row[f"gmv_{n}d_fen"] = c.gmv_per_customer[n]
            row[f"mature_{n}d"] = c.mature[n]
        rows.append(row)
    return ReportTable(title=(_("渠道 ROI")), columns=cols, rows=rows)


def staff_table(result: StaffResult, _: Gettext = _same) -> ReportTable:
    """Ranked rows plus a totals footer (rates recomputed from the summed counts). With WeCom behaviour
    data in the period, chats, messages, WeCom's reply rate and average reply time are added; the
    on-time rate of tasks is always its own column."""
    wecom = any(r.has_behavior for r in result.rows)
    cols = columns(
        ("rank", _("排名"), Kind.INT),
        ("name", _("员工"), Kind.TEXT),
        ("store", _("门店"), Kind.TEXT),
        ("held", _("持有客户"), Kind.INT),
        ("adds", _("添加"), Kind.INT),
        ("deleted_by_customer", _("被删"), Kind.INT),
        ("deleted_by_staff", _("主动删除"), Kind.INT),
        ("messages_assigned", _("应发消息"), Kind.INT),
        ("messages_sent", _("已发消息"), Kind.INT),
        ("send_rate", _("发送率"), Kind.RATE),
        ("tasks_due", _("到期任务"), Kind.INT),
        ("tasks_done", _("完成任务"), Kind.INT),
        ("on_time_rate", _("按时完成率"), Kind.RATE),
        ("first_orders", _("首单"), Kind.INT),
        ("gmv_fen", _("GMV"), Kind.FEN),
    )
    if wecom:  # WeCom behaviour data reported for the period: its own columns after the tasks
        at = [c.key for c in cols].index("on_time_rate") + 1
        cols[at:at] = columns(
            ("chats", _("聊天客户数"), Kind.INT),
            ("wecom_messages", _("聊天消息数"), Kind.INT),
            ("reply_rate", _("回复率（企业微信）"), Kind.RATE),
            ("avg_reply_time", _("平均首次回复（分钟）"), Kind.NUMBER),
        )
    rows: list[dict[str, Any]] = []
    for rank, r in enumerate(result.rows, start=1):
        rows.append(
            {
                "rank": rank,
                "staff_id": r.staff_id,
                "name": r.name,
                "store": r.store,
                "held": r.held,
                "adds": r.adds,
                "deleted_by_customer": r.deleted_by_customer,
                "deleted_by_staff": r.deleted_by_staff,
                "messages_assigned": r.messages_assigned,
                "messages_sent": r.messages_sent,
                "send_rate": r.send_rate,
                "tasks_due": r.tasks_due,
                "tasks_done": r.tasks_done,
                "on_time_rate": r.on_time_rate,
                "first_orders": r.first_orders,
                "gmv_fen": r.gmv_fen,
                **(
                    {
                        "chats": r.chats,
                        "wecom_messages": r.wecom_messages,
                        "reply_rate": r.reply_rate,
                        "avg_reply_time": r.avg_reply_time,
                    }
                    if wecom
                    else {}
                ),
            }
        )
    footer: dict[str, Any] | None = None
    if rows:
        footer = {"name": (_("合计"))}
        for key in ("held", "adds", "deleted_by_customer", "deleted_by_staff", "messages_assigned", "messages_sent"):
            footer[key] = sum(r[key] for r in rows)
        for key in ("tasks_due", "tasks_done", "first_orders", "gmv_fen"):
            footer[key] = sum(r[key] for r in rows)
        on_time = sum(r.tasks_on_time for r in result.rows)
        footer["send_rate"] = (
            footer["messages_sent"] / footer["messages_assigned"] if footer["messages_assigned"] else None
        )
        footer["on_time_rate"] = on_time / footer["tasks_due"] if footer["tasks_due"] else None
        if wecom:
            footer["chats"] = sum(r.chats for r in result.rows)
            footer["wecom_messages"] = sum(r.wecom_messages for r in result.rows)
            weight: float = sum(r.reply_chats for r in result.rows)
            footer["reply_rate"] = sum(r.reply_weighted for r in result.rows) / weight / 100 if weight else None
            weight = sum(r.reply_time_chats for r in result.rows)
            footer["avg_reply_time"] = sum(r.reply_time_weighted for r in result.rows) / weight if weight else None
    return ReportTable(title=(_("员工绩效")), columns=cols, rows=rows, footer=footer)


def campaigns_table(result: CampaignResult, _: Gettext = _same) -> ReportTable:
    cols = columns(
        ("kind_label", _("类型"), Kind.TEXT),
        ("name", _("名称"), Kind.TEXT),
        ("started_on", _("开始"), Kind.DATE),
        ("planned", _("计划"), Kind.INT),
        ("sent", _("已发"), Kind.INT),
        ("treated", _("触达组客户"), Kind.INT),
        ("treated_rate", _("触达组转化率"), Kind.RATE),
        ("treated_gmv_fen", _("触达组 GMV"), Kind.FEN),
        ("holdout", _("对照组"), Kind.INT),
        ("holdout_rate", _("对照组转化率"), Kind.RATE),
        ("uplift", _("提升"), Kind.RATE),
        ("ci_low", _("95% 区间下限"), Kind.RATE),
        ("ci_high", _("95% 区间上限"), Kind.RATE),
        ("p_value", _("p 值"), Kind.NUMBER),
    )
    rows = []
    for r in result.rows:
        rows.append(
            {
                "kind": r.kind,
                "kind_label": (_("群发")) if r.kind == "broadcast" else (_("SOP")),
                "id": r.id,
                "url": r.url,
                "name": r.name,
                "started_on": r.started_at.astimezone(result.zone).date() if r.started_at else None,
                "planned": r.planned,
                "sent": r.sent,
                "treated": r.treated,
                "treated_conversions": r.treated_conversions,
                "treated_rate": r.treated_rate,
                "treated_gmv_fen": r.treated_gmv_fen,
                "holdout": r.holdout,
                "holdout_conversions": r.holdout_conversions,
                "holdout_rate": r.holdout_rate,
                "uplift": r.uplift.difference if r.uplift else None,
                "ci_low": r.uplift.ci_low if r.uplift else None,
                "ci_high": r.uplift.ci_high if r.uplift else None,
                "p_value": r.uplift.p_value if r.uplift else None,
            }
        )
    return ReportTable(title=(_("活动效果")), columns=cols, rows=rows)
