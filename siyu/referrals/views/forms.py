"""The program form of the console: its fields, and the text → `ProgramIn`/`ProgramPatch` parsing.

Rewards are typed as one "kind + value" pair per side (points, coupon template id or mall reward
id); unlocks one per line as `threshold,name,reward` where reward is `200` (points),
`coupon:ID` or `reward:ID`. A mistake names its field, which the form shows next to it.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from siyu.commerce.views.kit import LOCAL_FORMAT, FormField, parse, parse_int, validated, yuan_text
from siyu.kit.errors import InvalidInput
from siyu.models.referral import ReferralProgram, ReferralUnlock
from siyu.referrals.schemas import ProgramIn, ProgramPatch


def _(message: str) -> str:
    return message


KINDS = (
    ("referral", _("老带新")),
    ("group_fission", _("群裂变")),
    ("task_fission", _("任务宝")),
)
CONDITIONS = (
    ("added_staff", _("添加客服")),
    ("joined_group", _("进群")),
    ("first_order", _("首单")),
    ("first_order_over", _("首单满额")),
)
REWARD_KINDS = (
    ("points", _("积分")),
    ("coupon", _("优惠券模板 ID")),
    ("reward", _("商城礼品 ID")),
)
STATUSES = (
    ("draft", _("草稿")),
    ("active", _("进行中")),
    ("paused", _("已暂停")),
    ("ended", _("已结束")),
)
FIELDS = (
    FormField("name", _("活动名称"), required=True),
    FormField("kind", _("活动类型"), kind="select", choices=KINDS, required=True),
    FormField("condition", _("邀请成功条件"), kind="select", choices=CONDITIONS, required=True),
    FormField("min_order_fen", _("首单最低金额（元）"), kind="yuan", hint=_("仅“首单满额”需要")),
    FormField("starts_at", _("开始时间"), kind="datetime"),
    FormField("ends_at", _("结束时间"), kind="datetime"),
    FormField("live_code_id", _("活码 ID"), kind="int", hint=_("邀请链接跳转到这个活码")),
    FormField("group_id", _("群 ID"), kind="int", hint=_("群裂变必填")),
    FormField("target_count", _("目标邀请人数"), kind="int", hint=_("裂变活动必填，至少 1")),
    FormField("referrer_reward_kind", _("邀请人奖励类型"), kind="select", choices=REWARD_KINDS),
    FormField("referrer_reward_value", _("邀请人奖励"), kind="int", hint=_("积分数，或优惠券模板 / 礼品的 ID")),
    FormField("referee_reward_kind", _("新人奖励类型"), kind="select", choices=REWARD_KINDS),
    FormField("referee_reward_value", _("新人奖励"), kind="int", hint=_("积分数，或优惠券模板 / 礼品的 ID")),
    FormField("attribution_days", _("归因天数"), kind="int", required=True),
    FormField("daily_cap_per_referrer", _("每人每日邀请上限"), kind="int", hint=_("留空为不限")),
    FormField("burst_threshold", _("异常突增阈值"), kind="int", hint=_("窗口内达到此数量转人工审核；留空不检测")),
    FormField("burst_window_minutes", _("突增检测窗口（分钟）"), kind="int", required=True),
    FormField("point_cost_fen", _("每积分成本（分）"), kind="int", required=True),
    FormField("eligible_segment_id", _("可参与人群 ID"), kind="int", hint=_("留空为所有会员")),
    FormField("eligible_tier_ids", _("可参与等级 ID"), kind="ids", hint=_("逗号分隔；留空为所有等级")),
    FormField("poster_title", _("海报标题")),
    FormField("poster_text", _("海报文案"), kind="textarea"),
    FormField(
        "unlocks",
        _("阶梯奖励"),
        kind="textarea",
        hint=_("每行一档：人数,名称,奖励（积分数、coupon:模板ID 或 reward:礼品ID），如 3,铜牌,300"),
    ),
)
DEFAULTS = {
    "kind": "referral",
    "condition": "added_staff",
    "attribution_days": "7",
    "burst_window_minutes": "60",
    "point_cost_fen": "1",
    "target_count": "0",
    "referrer_reward_kind": "points",
    "referee_reward_kind": "points",
}
_PARSED = tuple(f for f in FIELDS if f.name != "unlocks")


def _reward(kind: str | None, value: int | None, field: str) -> dict[str, int]:
    if value is None:
        return {}
    if kind in (None, "points"):
        return {"points": value}
    if kind == "coupon":
        return {"coupon_template_id": value}
    if kind == "reward":
        return {"reward_id": value}
    raise InvalidInput(f"{field}: unknown reward kind", details={"field": field})


def _reward_text(reward: dict[str, Any]) -> str:
    if "coupon_template_id" in reward:
        return f"coupon:{reward['coupon_template_id']}"
    if "reward_id" in reward:
        return f"reward:{reward['reward_id']}"
    return str(reward.get("points", ""))


def parse_unlocks(text: str) -> list[dict[str, Any]]:
    """`3,铜牌,300` lines → UnlockIn dicts; a bad line is refused naming the field and the line."""
    unlocks: list[dict[str, Any]] = []
    for number, line in enumerate(text.replace("，", ",").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[1]:
            raise InvalidInput(f"unlocks: line {number} must be threshold,name,reward", details={"field": "unlocks"})
        threshold = parse_int(parts[0], "unlocks")
        kind, _colon, raw = parts[2].rpartition(":")
        value = parse_int(raw, "unlocks")
        try:
            reward = _reward(kind or None, value, "unlocks")
        except InvalidInput:
            raise InvalidInput(f"unlocks: line {number} has an unknown reward", details={"field": "unlocks"}) from None
        unlocks.append({"threshold": threshold, "name": parts[1], "reward": reward})
    return unlocks


def program_data(values: dict[str, str], tz: ZoneInfo, *, with_kind: bool = True) -> dict[str, Any]:
    """The form's text as the schema's fields (every field given, so an edit can clear one)."""
    data = parse(values, _PARSED if with_kind else tuple(f for f in _PARSED if f.name != "kind"), tz)
    data["referrer_reward"] = _reward(
        data.pop("referrer_reward_kind"), data.pop("referrer_reward_value"), "referrer_reward_value"
    )
    data["referee_reward"] = _reward(
        data.pop("referee_reward_kind"), data.pop("referee_reward_value"), "referee_reward_value"
    )
    data["min_order_fen"] = data["min_order_fen"] or 0
    data["target_count"] = data["target_count"] or 0
    data["poster_title"] = data["poster_title"] or ""
    data["poster_text"] = data["poster_text"] or ""
    data["unlocks"] = parse_unlocks(values.get("unlocks", ""))
    return data


def program_in(values: dict[str, str], tz: ZoneInfo) -> ProgramIn:
    return validated(ProgramIn, program_data(values, tz))


def program_patch(values: dict[str, str], tz: ZoneInfo) -> ProgramPatch:
    return validated(ProgramPatch, program_data(values, tz, with_kind=False))  # the kind is fixed once created


def program_values(program: ReferralProgram, unlocks: list[ReferralUnlock], tz: ZoneInfo) -> dict[str, str]:
    """An existing program as the form shows it."""

    def when(value: Any) -> str:
        return value.astimezone(tz).strftime(LOCAL_FORMAT) if value is not None else ""

    def kind_of(reward: dict[str, Any]) -> str:
        return "coupon" if "coupon_template_id" in reward else "reward" if "reward_id" in reward else "points"

    def value_of(reward: dict[str, Any]) -> str:
        return str(next(iter(reward.values()), ""))

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return {
        "name": program.name,
        "kind": str(program.kind),
        "condition": str(program.condition),
        "min_order_fen": yuan_text(program.min_order_fen) if program.min_order_fen else "",
        "starts_at": when(program.starts_at),
        "ends_at": when(program.ends_at),
        "live_code_id": text(program.live_code_id),
        "group_id": text(program.group_id),
        "target_count": str(program.target_count),
        "referrer_reward_kind": kind_of(program.referrer_reward or {}),
        "referrer_reward_value": value_of(program.referrer_reward or {}),
        "referee_reward_kind": kind_of(program.referee_reward or {}),
        "referee_reward_value": value_of(program.referee_reward or {}),
        "attribution_days": str(program.attribution_days),
        "daily_cap_per_referrer": text(program.daily_cap_per_referrer),
        "burst_threshold": text(program.burst_threshold),
        "burst_window_minutes": str(program.burst_window_minutes),
        "point_cost_fen": str(program.point_cost_fen),
        "eligible_segment_id": text(program.eligible_segment_id),
        "eligible_tier_ids": ",".join(str(t) for t in program.eligible_tier_ids or []),
        "poster_title": program.poster_title,
        "poster_text": program.poster_text,
        "unlocks": "\n".join(f"{u.threshold},{u.name},{_reward_text(u.reward or {})}" for u in unlocks),
    }
