"""A broadcast refuses template variables it could not fill for some recipient."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import AdapterKind
from tests.factories import make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content
from tests.segments.factories import make_segment


@pytest.mark.parametrize(
    ("kind", "body", "variable"),
    [
        (AdapterKind.SANDBOX, "券码 {{ coupon_code }}", "coupon_code"),
        (AdapterKind.SANDBOX, "我是{{ staff_name }}", "staff_name"),
        (AdapterKind.WECOM_CUSTOMER, "{{ name }}，新品到了", "name"),
        (AdapterKind.WECOM_CUSTOMER, "退订 {{ unsubscribe_url }}", "unsubscribe_url"),
    ],
)
def test_unfillable_variables_are_refused_on_save(
    db: Session, clock: FrozenClock, kind: AdapterKind, body: str, variable: str
) -> None:
    workspace = make_workspace(db, clock=clock)
    segment = make_segment(db, workspace=workspace, clock=clock, members=[])
    account = make_account(db, workspace=workspace, clock=clock, kind=kind)
    item = make_content(db, workspace=workspace, clock=clock, body=body)
    with pytest.raises(InvalidInput) as caught:
        make_broadcast(db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item])
    assert caught.value.details == {"field": "variants.0.content_id", "variable": variable}


def test_wecom_broadcasts_may_use_shared_variables(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    segment = make_segment(db, workspace=workspace, clock=clock, members=[])
    account = make_account(db, workspace=workspace, clock=clock, kind=AdapterKind.WECOM_CUSTOMER)
    item = make_content(
        db,
        workspace=workspace,
        clock=clock,
        body="我是{{ staff_name }}，{{ brand }}上新 {{ link }}",
        link_url="https://s.example.com",
    )
    broadcast = make_broadcast(
        db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item]
    )
    assert broadcast.status == "draft"
