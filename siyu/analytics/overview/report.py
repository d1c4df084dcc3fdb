"""Request parameters and report tables of the overview (shared by the page, its exports and the API)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from siyu.analytics.overview.schemas import Filters, Overview
from siyu.analytics.overview.service import parse_grain
from siyu.analytics.periods import Grain, Period, resolve_period
from siyu.analytics.tables import Kind, ReportTable, columns
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.ids import parse_id

FILTER_FIELDS = ("channel_id", "store_id", "staff_id", "tag_id", "segment_id")
TABLES = ("trend", "pool", "rates")


@dataclass(frozen=True)
class Params:
    period: Period
    grain: Grain
    filters: Filters

    def query(self) -> dict[str, str]:
        """The parameters as query-string / hidden form fields."""
        base = {"from": self.period.start.isoformat(), "to": self.period.end.isoformat(), "grain": str(self.grain)}
        return base | self.filters.as_params()


def parse_params(session: Session, *, workspace_id: int, clock: Clock, values: Mapping[str, str | None]) -> Params:
    """from, to, grain and the filter ids from a query string or form; `InvalidInput` names the field."""
    ids: dict[str, int | None] = {}
    for name in FILTER_FIELDS:
        text = (values.get(name) or "").strip()
        ids[name] = parse_id(text) if text else None
        if text and ids[name] is None:
            raise InvalidInput(f"{name} must be an id", details={"field": name})
    period = resolve_period(session, workspace_id, clock, values.get("from"), values.get("to"))
    return Params(period=period, grain=parse_grain(values.get("grain")), filters=Filters(**ids))


def trend_table(o: Overview, _: Callable[[str], str]) -> ReportTable:
    """One row per bucket: the figures of the trend chart."""
    dates: list[tuple[str, str, Kind]] = [("start", _("日期"), Kind.DATE)]
    if o.grain != Grain.DAY:  # weeks and months clipped to the period: first and last day covered
        dates = [("start", _("开始日期"), Kind.DATE), ("end", _("结束日期"), Kind.DATE)]
    table = ReportTable(
        title=_("经营趋势"),
        columns=columns(
            *dates,
            ("pool", _("私域池"), Kind.INT),
            ("adds", _("新增好友"), Kind.INT),
            ("deleted_by_customer", _("客户删除"), Kind.INT),
            ("deleted_by_staff", _("员工删除"), Kind.INT),
            ("net_growth", _("净增"), Kind.INT),
            ("open_at_start", _("期初好友关系"), Kind.INT),
            ("deletion_rate", _("删除率"), Kind.RATE),
            ("first_orders", _("首单"), Kind.INT),
            ("repurchases", _("复购"), Kind.INT),
            ("gmv_fen", _("私域 GMV"), Kind.FEN),
            ("active", _("活跃会员"), Kind.INT),
        ),
    )
    table.rows = [dict(vars(r)) for r in o.trend]
    return table


def pool_table(o: Overview, _: Callable[[str], str]) -> ReportTable:
    """The pool per channel at the period's end and at the previous period's end."""
    labels = {
        "pool": _("私域池"),
        "wecom": _("企微好友"),
        "group": _("群成员"),
        "official_account": _("公众号关注"),
        "sms": _("短信可触达"),
    }
    table = ReportTable(
        title=_("私域池构成"),
        columns=columns(
            ("channel", _("触达方式"), Kind.TEXT),
            ("now", _("期末"), Kind.INT),
            ("previous", _("上期末"), Kind.INT),
        ),
    )
    if o.pool.pool or o.previous_pool.pool:
        table.rows = [
            {"channel": label, "now": getattr(o.pool, key), "previous": getattr(o.previous_pool, key)}
            for key, label in labels.items()
        ]
    return table


def rate_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "oa_open_rate": _("公众号打开率"),
        "oa_click_rate": _("公众号点击率"),
        "login_rate": _("员工登录率"),
        "reply_rate": _("任务按时完成率"),
        "conversion_rate": _("首单转化率"),
    }


def rates_table(o: Overview, _: Callable[[str], str]) -> ReportTable:
    """The three rates with their numerators and denominators."""
    labels = rate_labels(_)
    table = ReportTable(
        title=_("三率"),
        columns=columns(
            ("rate", _("指标"), Kind.TEXT),
            ("numerator", _("分子"), Kind.INT),
            ("denominator", _("分母"), Kind.INT),
            ("value", _("本期"), Kind.RATE),
            ("previous", _("上期"), Kind.RATE),
            ("note", _("说明"), Kind.TEXT),
        ),
    )
    table.rows = [
        {
            "rate": labels[r.key],
            "numerator": r.numerator,
            "denominator": r.denominator,
            "value": r.value,
            "previous": r.previous,
            "note": "" if r.reported else _("未上报"),
        }
        for r in o.rates
    ]
    return table


def table_of(name: str, o: Overview, _: Callable[[str], str]) -> ReportTable:
    builders = {"trend": trend_table, "pool": pool_table, "rates": rates_table}
    if name not in builders:
        raise InvalidInput("table must be trend, pool or rates", details={"field": "table"})
    return builders[name](o, _)
