"""The sandbox adapter (default): records messages to an outbox instead of sending them.

Demos and tests use it; `simulate_engagement` turns sandbox sends into delivered, read and
clicked events so the results pages have something to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, insert

from siyu.messaging.adapters.base import Capabilities, Needs, Outcome, OutcomeKind, Outgoing, SendContext
from siyu.models import ConsentChannel, ContentKind, SandboxMessage


class SandboxAdapter:
    def __init__(self, consent_channel: ConsentChannel | None = None) -> None:
        self.capabilities = Capabilities(
            max_batch=1000,
            content_kinds=frozenset(ContentKind),
            needs=Needs.NOTHING,
            consent_channel=consent_channel,
            in_transaction=True,
        )

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        now = context.clock.now()
        # One Core executemany: the outbox of a large broadcast is written row by row otherwise.
        rows = [
            {
                "workspace_id": context.account.workspace_id,
                "delivery_id": item.delivery_id,
                "customer_id": item.customer_id,
                "channel_account_id": context.account.id,
                "message": dict(item.message),
                "sent_at": now,
            }
            for item in batch
        ]
        if rows:
            context.session.connection().execute(insert(cast(Table, SandboxMessage.__table__)), rows)
        return [
            Outcome(item.delivery_id, OutcomeKind.SENT, provider_message_id=f"sandbox-{item.delivery_id}")
            for item in batch
        ]

    def check(self, context: SendContext) -> None:
        return None


def build(settings: dict[str, object]) -> SandboxAdapter:
    simulated = settings.get("consent_channel")
    return SandboxAdapter(ConsentChannel(str(simulated)) if simulated else None)
