"""Lottery factories: keyword-only, flushed not committed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.community.lottery import service
from siyu.community.lottery.schemas import DrawIn, PrizeIn
from siyu.kit.clock import Clock
from siyu.models import DrawMethod, LotteryDraw


def make_draw(
    db: Session,
    *,
    actor: Actor,
    clock: Clock,
    method: DrawMethod = DrawMethod.FIXED,
    prizes: list[dict[str, Any]] | None = None,
    is_open: bool = True,
    **values: Any,
) -> LotteryDraw:
    """A draw (opened unless `is_open=False`); default: one fixed prize, 1 winner of stock 1."""
    specs = prizes or [{"name": "一等奖", "stock": 1, "winners": 1, "points": 100}]
    data = DrawIn(
        name=values.pop("name", "双十一抽奖"),
        method=method,
        prizes=[PrizeIn(**spec) for spec in specs],
        **values,
    )
    draw = service.create_draw(db, actor=actor, data=data, clock=clock)
    if is_open:
        service.open_draw(db, actor=actor, draw_id=draw.id, clock=clock)
    return draw
