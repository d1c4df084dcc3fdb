"""The three pages and their API: exact figures, exports, drill-down, permissions, bad input, empty states."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Role, Segment, SegmentMember, User, Workspace
from tests.analytics.performance.campaign_data import build_campaigns
from tests.analytics.performance.scenario import build_roi, build_staff
from tests.api.conftest import bearer
from tests.factories import make_staff, make_token
from tests.web.conftest import csrf_of, login

ROI = "from=2026-01-01&to=2026-11-23"
STAFF = "from=2026-11-01&to=2026-11-23"


def _segments(db: Session, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(Segment).where(Segment.workspace_id == ws.id)) or 0)


def test_roi_page_api_and_exports(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given build_roi's channels (A: 2 adds, ¥20, ¥100 / ¥150 per customer at 30 / 90 days, payback 5 days)
    s = build_roi(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get(f"/analytics/roi?{ROI}")
    assert page.status_code == 200
    row = page.text[page.text.index(f'data-channel-id="{s.a.id}"') :]
    row = row[: row.index("</tr>")]
    for col, text in (("cost_fen", "¥20.00"), ("roi", "10.00"), ("gmv_30d_fen", "¥100.00"), ("gmv_90d_fen", "¥150.00")):
        assert f'data-col="{col}" class="text-end">{text}</td>' in row, col
    assert "未满 365 天" in row and "5 天" in row
    # the CSV has the same cells in yuan
    exported = client.get(f"/analytics/roi?{ROI}&format=csv")
    assert exported.status_code == 200 and exported.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert lines[0][:3] == ["渠道", "添加", "花费"]
    a = next(line for line in lines if line[0] == "包裹卡")
    # (cost per acquired customer: ¥20 / 2 acquired = ¥10)
    assert a == ["包裹卡", "2", "20.0", "10.0", "2", "200.0", "10.0", "2", "10.0", "100.0", "150.0", "", "5"]
    # the API returns raw fen and the margin used
    token = make_token(db, clock=clock, workspace=workspace, scopes=["analytics:read"])
    db.commit()
    body = client.get(f"/api/v1/analytics/roi?{ROI}", headers=bearer(token)).json()
    assert body["gross_margin_bp"] is None
    api_row = next(r for r in body["table"]["rows"] if r["channel"] == "包裹卡")
    assert (api_row["cost_fen"], api_row["gmv_30d_fen"], api_row["gmv_365d_fen"], api_row["payback_days"]) == (
        2_000,
        10_000,
        None,
        5,
    )
    assert api_row["cost_per_acquired_fen"] == 1_000


def test_roi_acquired_customers_drill(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given build_roi: channel A acquired c1 and c2 in the period
    s = build_roi(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # the 新获客户 cell is one click: a form posting the period and the channel, nothing else
    page = client.get(f"/analytics/roi?{ROI}")
    row = page.text[page.text.index(f'data-channel-id="{s.a.id}"') :]
    row = row[: row.index("</tr>")]
    assert 'action="/analytics/roi/drill"' in row and f'name="channel_id" value="{s.a.id}"' in row
    before = _segments(db, workspace)
    response = client.post(
        "/analytics/roi/drill",
        data={"csrf_token": csrf, "from": "2026-01-01", "to": "2026-11-23", "channel_id": str(s.a.id)},
        follow_redirects=False,
    )
    # then a static segment of exactly c1 and c2, recomputed on the server
    assert response.status_code == 303
    segment_id = int(response.headers["location"].rsplit("/", 1)[1])
    members = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)))
    assert members == {s.c1.id, s.c2.id}
    assert _segments(db, workspace) == before + 1
    assert db.get(Segment, segment_id).name == "渠道 ROI · 包裹卡 · 新获客户 2026-01-01~2026-11-23"  # type: ignore[union-attr]
    # an unknown channel: 404 naming it, nothing written
    missing = client.post(
        "/analytics/roi/drill",
        data={"csrf_token": csrf, "from": "2026-01-01", "to": "2026-11-23", "channel_id": "999999"},
        follow_redirects=False,
    )
    assert missing.status_code == 404 and _segments(db, workspace) == before + 1
    # the API twin: B re-added c3 (in the pool before the period), so its segment is empty
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    made = client.post(
        "/api/v1/analytics/roi/acquired",
        headers=bearer(token),
        json={"from": "2026-01-01", "to": "2026-11-23", "channel_id": s.a.id},
    )
    assert made.status_code == 200, made.text
    assert made.json()["members"] == 2
    empty = client.post("/api/v1/analytics/roi/acquired", headers=bearer(token), json={"channel_id": s.b.id})
    assert empty.status_code == 200 and empty.json()["members"] == 0


def test_staff_page_xlsx_and_drill(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    t = build_staff(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get(f"/analytics/staff?{STAFF}&sort=gmv_fen")
    assert page.status_code == 200
    assert page.text.index("小王") < page.text.index("小李") < page.text.index("小张")
    # XLSX: numbers stay numbers, money in yuan, rates as fractions; the footer sums the team
    book = load_workbook(io.BytesIO(client.get(f"/analytics/staff?{STAFF}&format=xlsx").content))
    sheet = book.active
    assert sheet is not None
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][:4] == ["排名", "员工", "门店", "持有客户"]
    assert rows[1] == [1, "小王", "静安店", 2, 2, 1, 1, 3, 2, 0.666667, 3, 2, 0.333333, 1, 140]
    assert rows[-1][3:5] == [3, 3] and rows[-1][-1] == 170
    # drill: 小王's adds become a static segment of cB and cC
    before = _segments(db, workspace)
    response = client.post(
        "/analytics/staff/drill",
        data={"csrf_token": csrf, "from": "2026-11-01", "to": "2026-11-23", "staff_id": str(t.s1.id), "cell": "adds"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    segment_id = int(response.headers["location"].rsplit("/", 1)[1])
    members = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)))
    assert members == {t.cb.id, t.cc.id}
    assert _segments(db, workspace) == before + 1
    # the API twin
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    made = client.post(
        "/api/v1/analytics/staff/cell",
        headers=bearer(token),
        json={"from": "2026-11-01", "to": "2026-11-23", "staff_id": t.s1.id, "cell": "held"},
    )
    assert made.status_code == 200, made.text
    assert made.json()["members"] == 2


def test_campaigns_page_links_and_api(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    c = build_campaigns(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get(f"/analytics/campaigns?{STAFF}")
    assert page.status_code == 200
    assert f'href="/broadcasts/{c.broadcast.id}"' in page.text and f'href="/journeys/{c.journey.id}"' in page.text
    assert 'data-col="treated_rate" class="text-end">37.5%</td>' in page.text
    token = make_token(db, clock=clock, workspace=workspace, scopes=["analytics:read"])
    db.commit()
    rows = client.get(f"/api/v1/analytics/campaigns?{STAFF}", headers=bearer(token)).json()["table"]["rows"]
    assert [(r["kind"], r["treated_rate"], r["holdout_rate"], r["uplift"]) for r in rows] == [
        ("broadcast", 0.375, 0.0, 0.375),
        ("journey", 0.5, None, None),
    ]


def test_empty_workspace_permissions_and_bad_input(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    analyst = user_with_role(Role.ANALYST)
    read_only = make_token(db, clock=clock, workspace=workspace, scopes=["analytics:read"])
    no_scope = make_token(db, clock=clock, workspace=workspace, scopes=["customers:read"])
    db.commit()
    for path in ("roi", "staff", "campaigns"):
        assert client.get(f"/api/v1/analytics/{path}", headers=bearer(no_scope)).status_code == 403
        # empty workspace: empty tables, never NaN
        body = client.get(f"/api/v1/analytics/{path}", headers=bearer(read_only))
        assert body.status_code == 200 and body.json()["table"]["rows"] == [] and "NaN" not in body.text
    # drilling needs analytics:write
    denied = client.post(
        "/api/v1/analytics/staff/cell", headers=bearer(read_only), json={"staff_id": 1, "cell": "held"}
    )
    assert denied.status_code == 403
    denied = client.post("/api/v1/analytics/roi/acquired", headers=bearer(read_only), json={"channel_id": 1})
    assert denied.status_code == 403
    # bad dates: the API names the field; the page re-renders with the error (422)
    bad = client.get("/api/v1/analytics/staff?from=2026-13-01", headers=bearer(read_only))
    assert bad.status_code == 422 and "from" in bad.text
    reversed_ = client.get("/api/v1/analytics/roi?from=2026-11-20&to=2026-11-01", headers=bearer(read_only))
    assert reversed_.status_code == 422 and "from" in reversed_.text
    assert client.get("/api/v1/analytics/staff?sort=nope", headers=bearer(read_only)).status_code == 422
    assert client.get("/api/v1/analytics/staff?store_id=999", headers=bearer(read_only)).status_code == 404
    login(client, analyst.email)
    for path in ("/analytics/roi", "/analytics/staff", "/analytics/campaigns"):
        empty = client.get(path)
        assert empty.status_code == 200 and "这个范围内还没有数据。" in empty.text
        page = client.get(f"{path}?from=nonsense")
        assert page.status_code == 422 and 'data-error="from"' in page.text
    assert 'data-error="sort"' in client.get("/analytics/staff?sort=nope").text
    csrf = csrf_of(client.get("/analytics/staff").text)
    before = _segments(db, workspace)
    drill = client.post(
        "/analytics/staff/drill",
        data={"csrf_token": csrf, "staff_id": "abc", "cell": "held"},
        follow_redirects=False,
    )
    assert drill.status_code == 422
    assert _segments(db, workspace) == before
    # staff: 403 on the pages
    member = make_staff(db, workspace=workspace, clock=clock)
    staff_user = user_with_role(Role.STAFF, staff_id=member.id)
    db.commit()
    login(client, staff_user.email)
    for path in ("/analytics/roi", "/analytics/staff", "/analytics/campaigns"):
        assert client.get(path).status_code == 403


def test_campaigns_page_shows_the_cap_and_pages_on(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build_campaigns(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get(f"/analytics/campaigns?{STAFF}")
    # one broadcast and one SOP: under the cap of 50 each, so no "show more"
    assert "每页最多 50 个群发和 50 个 SOP" in page.text and 'id="campaign-more"' not in page.text
    # the second page is empty of both kinds, with a way back; a bad offset names its field
    second = client.get(f"/analytics/campaigns?{STAFF}&offset=50")
    assert second.status_code == 200 and 'id="campaign-first"' in second.text and "data-campaign=" not in second.text
    bad = client.get(f"/analytics/campaigns?{STAFF}&offset=-1")
    assert bad.status_code == 422 and 'data-error="offset"' in bad.text
