"""The channel console: metrics list and chart, the channel form, detail page and cost entries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Channel, ChannelCostEntry, Role, User, Workspace
from tests.channels.scenario import build
from tests.web.conftest import login

RANGE = "from=2026-10-20&to=2026-10-29"
_TAGS = re.compile(r"<[^>]+>")
_CELL = re.compile(r'<td class="text-end" data-metric="(\w+)">(.*?)</td>', re.S)


def cells(html: str, row_marker: str) -> dict[str, str]:
    """The metric cells of the table row carrying `row_marker`, as the text a person reads."""
    start = html.index(row_marker)
    row = html[start : html.index("</tr>", start)]
    return {name: " ".join(_TAGS.sub("", text).split()) for name, text in _CELL.findall(row)}


def _count(db: Session, model: Any, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == ws.id)) or 0)


def test_list_shows_exact_metrics_per_channel_and_in_total(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given the hand-computed scenario in the console's workspace
    s = build(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    # when an analyst opens the channel list for the scenario's range
    page = client.get(f"/channels?{RANGE}")
    assert page.status_code == 200
    html = page.text
    # then each channel's row and the total row show the first-touch figures
    assert cells(html, f'data-channel-id="{s.a.id}"') == {
        "exposures": "1,000",
        "scans": "4",
        "clicks": "1",
        "adds": "2",
        "add_rate": "40.0%",
        "cost": "¥150.00",
        "cac": "¥75.00",
        "deletion_rate_7d": "50.0% (50.0%)",
        "deletion_rate_30d": "100.0% (50.0%)",
        "first_orders": "2",
        "gmv": "¥300.00",
        "roi": "2.00",
    }
    assert cells(html, f'data-channel-id="{s.c.id}"')["roi"] == "—"
    assert cells(html, f'data-channel-id="{s.c.id}"')["exposures"] == "—"
    total = cells(html, 'data-channel-id="total"')
    assert (total["adds"], total["cost"], total["cac"], total["gmv"], total["roi"]) == (
        "5",
        "¥220.00",
        "¥44.00",
        "¥680.04",
        "3.09",
    )
    # the chart gets the daily series of every channel
    assert "/static/vendor/echarts.min.js" in html and 'id="trend-chart"' in html
    chart = json.loads(re.search(r"var data = (\{.*?\});\n", html).group(1))  # type: ignore[union-attr]
    assert chart["days"][0] == "2026-10-20" and len(chart["days"]) == 10
    assert chart["total"]["adds"] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    assert chart["total"]["cost_fen"][:3] == [10_000, 5_000, 5_000]
    # an analyst gets no "new channel" button
    assert 'id="new-channel"' not in html


def test_last_touch_toggle_and_bad_range(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)
    html = client.get(f"/channels?{RANGE}&attribution=last_touch").text
    assert 'id="attribution-last_touch" value="last_touch" autocomplete="off" checked' in html
    cps = cells(html, f'data-channel-id="{s.c.id}"')
    assert (cps["adds"], cps["cost"], cps["cac"], cps["gmv"], cps["roi"]) == (
        "2",
        "¥37.51",
        "¥18.76",
        "¥300.04",
        "8.00",
    )
    # a reversed range is shown as an error on the form, with the default range below it
    bad = client.get("/channels?from=2026-10-29&to=2026-10-20")
    assert bad.status_code == 422
    assert 'data-error="range"' in bad.text and "from must be on or before to" in bad.text
    assert 'value="2026-10-25"' in bad.text  # the default: 30 days up to today
    assert client.get("/channels?from=nonsense").status_code == 422


def test_create_and_edit_a_channel_through_the_form(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    operator = user_with_role(Role.OPERATOR)
    csrf = login(client, operator.email)
    assert client.get("/channels/new").status_code == 200
    form = {
        "csrf_token": csrf,
        "name": "KOL 小红书",
        "type": "kol",
        "owner_user_id": str(operator.id),
        "hook": "免费小样",
        "starts_on": "2026-11-01",
        "ends_on": "",
        "cost_model": "cpa",
        "cpa_yuan": "20.5",
        "cps_percent": "",
    }
    created = client.post("/channels", data=form)
    assert created.status_code == 303
    channel = db.scalar(select(Channel).where(Channel.workspace_id == workspace.id))
    assert channel is not None
    assert created.headers["location"] == f"/channels/{channel.id}"
    assert (channel.cpa_fen, channel.owner_user_id, channel.ends_on) == (2_050, operator.id, None)
    detail = client.get(f"/channels/{channel.id}").text
    assert "渠道已创建" in detail and "¥20.50 / 添加" in detail
    # the edit form is prefilled; switching to CPS takes the percentage exactly
    edit = client.get(f"/channels/{channel.id}/edit").text
    assert 'name="cpa_yuan" inputmode="decimal" value="20.50"' in edit
    saved = client.post(f"/channels/{channel.id}", data=form | {"cost_model": "cps", "cps_percent": "12.5"})
    assert saved.status_code == 303
    db.refresh(channel)
    assert (channel.cost_model, channel.cpa_fen, channel.cps_basis_points) == ("cps", None, 1_250)
    # bad input comes back on the form by its field, nothing written
    for bad, field in [
        ({"cpa_yuan": "20.555"}, "cpa_fen"),
        ({"cpa_yuan": ""}, "cpa_fen"),
        ({"name": "KOL 小红书"}, "name"),
        ({"ends_on": "2026-10-01"}, "ends_on"),
        ({"starts_on": "2026-02-30"}, "starts_on"),
    ]:
        response = client.post("/channels", data=form | bad)
        assert response.status_code in (409, 422), bad
        assert f'data-error="{field}"' in response.text, bad
    assert _count(db, Channel, workspace) == 1


def test_detail_cost_entry_in_yuan(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    html = client.get(f"/channels/{s.a.id}?{RANGE}").text
    assert cells(html, 'data-row="total"')["cost"] == "¥150.00"
    assert cells(html, 'data-day="2026-10-21"')["adds"] == "1"
    assert cells(html, 'data-day="2026-10-21"')["cost"] == "¥50.00"
    assert 'data-field="amount">¥999.99<' in html
    # when a cost of ¥1,234.5 with 3,000 exposures is entered
    back = "from=2026-10-20&to=2026-10-29&attribution=last_touch&window_days=30"
    assert 'name="range" value="from=2026-10-20&amp;to=2026-10-29&amp;attribution=first_touch' in html
    added = client.post(
        f"/channels/{s.a.id}/costs",
        data={
            "csrf_token": csrf,
            "spent_on": "2026-10-22",
            "amount": "1,234.5",
            "exposures": "3000",
            "note": "补寄",
            "range": back + "&evil=1",
        },
    )
    # then it is stored as exact fen and the page comes back with the range being looked at
    assert added.status_code == 303
    assert added.headers["location"] == f"/channels/{s.a.id}?{back}#costs"
    entry = db.scalar(select(ChannelCostEntry).where(ChannelCostEntry.note == "补寄"))
    assert entry is not None and (entry.amount_fen, entry.exposures) == (123_450, 3000)
    html = client.get(f"/channels/{s.a.id}?{RANGE}").text
    assert "花费已记录" in html
    assert f'data-entry-id="{entry.id}"' in html and 'data-field="amount">¥1,234.50<' in html
    assert cells(html, 'data-row="total"')["cost"] == "¥1,384.50"
    # more than two decimals, negatives and words are refused by the form, nothing written
    before = _count(db, ChannelCostEntry, workspace)
    for amount in ("1.005", "-3", "十元"):
        refused = client.post(
            f"/channels/{s.a.id}/costs", data={"csrf_token": csrf, "spent_on": "2026-10-22", "amount": amount}
        )
        assert refused.status_code == 422
        assert 'data-error="cost"' in refused.text
    refused = client.post(f"/channels/{s.a.id}/costs", data={"csrf_token": csrf, "spent_on": "", "amount": "1"})
    assert refused.status_code == 422 and "spent_on is required" in refused.text
    assert _count(db, ChannelCostEntry, workspace) == before
    # and deleting the entry takes it out again
    gone = client.post(f"/channels/{s.a.id}/costs/{entry.id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303
    assert _count(db, ChannelCostEntry, workspace) == before - 1


def test_archive_and_restore_from_the_detail_page(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    assert client.post(f"/channels/{s.c.id}/archive", data={"csrf_token": csrf}).status_code == 303
    db.refresh(s.c)
    assert s.c.is_archived
    # archived with activity in the range: still a row; with none: listed apart
    assert f'data-channel-id="{s.c.id}"' in client.get(f"/channels?{RANGE}").text
    html = client.get("/channels?from=2026-01-01&to=2026-01-31").text
    assert f'data-channel-id="{s.c.id}"' not in html and 'id="archived-channels"' in html
    assert client.post(f"/channels/{s.c.id}/restore", data={"csrf_token": csrf}).status_code == 303
    db.refresh(s.c)
    assert not s.c.is_archived


def test_analyst_cannot_change_anything(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.ANALYST).email)
    detail = client.get(f"/channels/{s.a.id}")
    assert detail.status_code == 200
    assert 'id="cost-form"' not in detail.text and 'id="edit-channel"' not in detail.text
    audit_before = db.scalar(select(func.count()).select_from(AuditEntry))
    costs_before = _count(db, ChannelCostEntry, workspace)
    attempts = [
        client.get("/channels/new"),
        client.get(f"/channels/{s.a.id}/edit"),
        client.post("/channels", data={"csrf_token": csrf, "name": "x", "type": "sms", "cost_model": "entries"}),
        client.post(
            f"/channels/{s.a.id}", data={"csrf_token": csrf, "name": "y", "type": "sms", "cost_model": "entries"}
        ),
        client.post(f"/channels/{s.a.id}/archive", data={"csrf_token": csrf}),
        client.post(f"/channels/{s.a.id}/costs", data={"csrf_token": csrf, "spent_on": "2026-10-22", "amount": "1"}),
        client.post(f"/channels/{s.a.id}/costs/1/delete", data={"csrf_token": csrf}),
    ]
    assert [r.status_code for r in attempts] == [403] * 7
    assert "没有权限" in attempts[2].text
    assert _count(db, Channel, workspace) == 3
    assert _count(db, ChannelCostEntry, workspace) == costs_before
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == audit_before
    db.refresh(s.a)
    assert (s.a.name, s.a.is_archived) == ("包裹卡", False)


def test_english_console(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    client.post("/locale", data={"csrf_token": csrf, "locale": "en", "next": "/channels"})
    html = client.get(f"/channels/{s.b.id}?{RANGE}").text
    assert "Cost entries" in html and "Per add (CPA)" in html and "7-day deletion rate" in html
