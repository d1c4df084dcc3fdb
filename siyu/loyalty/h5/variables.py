"""The `{{ member_url }}` message variable: each recipient's own signed link to their H5 center.

Registered with `siyu.messaging.content.register_variable` by `register()`; the link is signed
with the installation's secret and public address (as unsubscribe links are) and lasts
`member_link_days` from the moment the message is rendered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.kit.clock import Clock, system_clock
from siyu.loyalty.h5.links import member_link_url
from siyu.models import Customer

NAME = "member_url"
SAMPLE = "https://example.com/m/enter?t=sample"


def member_urls(
    workspace_id: int, customers: Sequence[Customer], *, settings: Settings, clock: Clock
) -> dict[int, Any]:
    """One signed link per customer (customers merged away or erased get none, so the message
    fails for them rather than carrying a dead link)."""
    return {
        c.id: member_link_url(workspace_id=workspace_id, customer_id=c.id, settings=settings, clock=clock)
        for c in customers
        if c.merged_into_id is None and c.erased_at is None
    }


def _load(_session: Session, workspace_id: int, customers: Sequence[Customer]) -> dict[int, Any]:
    from siyu.db import get_database

    return member_urls(workspace_id, customers, settings=get_database().settings, clock=system_clock)


def register() -> None:
    """Make `{{ member_url }}` available to message templates."""
    from siyu.messaging.content import register_variable

    register_variable(NAME, _load)
