"""What the demo's channels cost: dated entries per channel and brand-local day, from the funnel's tallies.

Package cards, feed ads and SMS report their exposures (cards shipped, impressions, messages
sent), derived from the day's scans and a scan rate; referral coupons, the official account's
promotion, the shops' 拉新 bonus and KOC fees follow the day's adds. The KOL channel is also
settled per add (CPA) and the Tmall shop by a share of GMV (CPS): those are computed, not entered.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any

from siyu.demo import channels as plan
from siyu.demo.funnel import Funnel


def cost_entries(
    funnel: Funnel, channel_ids: dict[str, int], *, stores: int, recorded_by: str, rng: random.Random
) -> list[dict[str, Any]]:
    """What each channel cost per brand-local day of the last `COST_DAYS`, from that day's scans and adds."""
    today = funnel.day(funnel.now)
    rows = []
    for name, channel_id in channel_ids.items():
        for back in range(plan.COST_DAYS - 1, -1, -1):
            day = today - timedelta(days=back)
            scans, adds = funnel.tallies.get((channel_id, day), (0, 0))
            koc_adds = 0
            if day.day in (1, 16):  # KOC fees settle the half month before (the 16th to the 15th)
                previous = day - timedelta(days=1)
                span = previous.day - (15 if previous.day > 15 else 0)
                koc_adds = sum(
                    funnel.tallies.get((channel_id, day - timedelta(days=n)), (0, 0))[1] for n in range(1, span + 1)
                )
            entry = _cost_of(name, day, scans, adds, stores, koc_adds, rng)
            if entry is not None:
                recorded = datetime.combine(day + timedelta(days=1), time(10), tzinfo=funnel.tz)
                rows.append(
                    entry
                    | {
                        "channel_id": channel_id,
                        "spent_on": day,
                        "created_by": recorded_by,
                        "created_at": min(recorded.astimezone(funnel.now.tzinfo), funnel.now),
                    }
                )
    return rows


def _cost_of(
    name: str, day: date, scans: int, adds: int, stores: int, koc_adds: int, rng: random.Random
) -> dict[str, Any] | None:
    """One channel-day's entry (amount in fen, exposures when the channel reports them), or None."""
    seen = max(scans, 1)  # a day without scans still shipped cards, sent messages, showed ads
    if name == "包裹卡":
        cards = round(seen / rng.uniform(*plan.CARD_SCAN_RATE))
        note = f"包裹卡印制 {cards} 张 · 小样 {adds} 份"
        return {"amount_fen": cards * plan.CARD_FEN + adds * plan.SAMPLE_FEN, "exposures": cards, "note": note}
    if name == "抖音":
        shown = round(seen / rng.uniform(*plan.AD_SCAN_RATE))
        return {"amount_fen": shown * plan.AD_FEN_PER_IMPRESSION, "exposures": shown, "note": "巨量引擎信息流投放"}
    if name == "短信":
        sent = round(seen / rng.uniform(*plan.SMS_SCAN_RATE))
        return {"amount_fen": sent * plan.SMS_FEN, "exposures": sent, "note": f"会员短信 {sent} 条"}
    if name == "老带新" and (pairs := round(adds * plan.REFERRAL_REDEEMED)):
        return {"amount_fen": pairs * plan.REFERRAL_PAIR_FEN, "exposures": None, "note": f"老带新奖励券核销 {pairs} 对"}
    if name == "公众号" and adds:
        amount = adds * rng.randint(*plan.MP_FEN_PER_ADD) // 100 * 100
        return {"amount_fen": amount, "exposures": None, "note": "推文加热"}
    if name == "门店" and (day.day == 1 or adds):
        amount, note = adds * plan.STORE_BONUS_FEN, f"导购拉新奖励 {adds} 人"
        if day.day == 1:
            amount, note = amount + plan.STORE_MATERIAL_FEN * stores, f"门店海报 · 台卡物料；{note}"
        return {"amount_fen": amount, "exposures": None, "note": note}
    if name == "小红书" and day.day in (1, 16) and koc_adds:
        return {"amount_fen": koc_adds * plan.KOC_FEN_PER_ADD, "exposures": None, "note": "KOC 寄样与内容合作费"}
    return None
