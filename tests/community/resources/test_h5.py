"""The member's library on the phone: only what they may see, bodies escaped with line breaks
kept, a read counted once a day, and downloads with the original name and `nosniff`."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.community.resources.files import PDF as PDF_TYPE
from siyu.kit.clock import FrozenClock
from siyu.models.resource import Resource, ResourceKind, ResourceStatus
from tests.community.resources import factories as f
from tests.factories import make_workspace
from tests.loyalty.h5.conftest import client, sign_in
from tests.loyalty.h5.factories import make_member, make_tier

__all__ = ["client"]


def test_library_lists_visible_resources_and_filters_by_kind(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a base-tier member, a gold-only guide, an open news item, a pinned guide and a draft
    ws = make_workspace(db, clock=clock)
    make_tier(db, workspace=ws, clock=clock, name="普通", rank=0, threshold=0)
    gold = make_tier(db, workspace=ws, clock=clock, name="高级", rank=1, threshold=100_000)
    customer, _member = make_member(db, workspace=ws, clock=clock)
    f.make_resource(db, workspace=ws, clock=clock, title="高级专享攻略", visible_tier_ids=[gold.id])
    f.make_resource(db, workspace=ws, clock=clock, title="周五上新", kind=ResourceKind.NEWS)
    f.make_resource(db, workspace=ws, clock=clock, title="入门必读", is_pinned=True)
    f.make_resource(db, workspace=ws, clock=clock, title="未发布草稿", status=ResourceStatus.DRAFT)
    db.commit()
    sign_in(client, ws.id, customer.id, clock)
    # when the member opens the library, then filters to news
    page = client.get("/m/resources")
    news = client.get("/m/resources?kind=news")
    unknown_kind = client.get("/m/resources?kind=bogus")
    # then only visible, published ones show, pinned first
    assert page.status_code == 200
    assert _titles(page.text) == ["入门必读", "周五上新"]
    assert _titles(news.text) == ["周五上新"]
    assert _titles(unknown_kind.text) == ["入门必读", "周五上新"]


def test_a_resource_not_for_the_member_is_a_404_without_its_content(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a gold-only file and an archived guide
    ws = make_workspace(db, clock=clock)
    make_tier(db, workspace=ws, clock=clock, name="普通", rank=0, threshold=0)
    gold = make_tier(db, workspace=ws, clock=clock, name="高级", rank=1, threshold=100_000)
    customer, _member = make_member(db, workspace=ws, clock=clock)
    secret = f.make_resource(
        db, workspace=ws, clock=clock, title="内部价目", body="机密正文", kind=ResourceKind.FILE,
        visible_tier_ids=[gold.id], file_name="价目.pdf", file_type=PDF_TYPE, file_data=f.PDF, file_size=len(f.PDF),
    )  # fmt: skip
    archived = f.make_resource(db, workspace=ws, clock=clock, title="旧攻略", status=ResourceStatus.ARCHIVED)
    db.commit()
    sign_in(client, ws.id, customer.id, clock)
    # when the base member opens them (and a malformed id)
    responses = [
        client.get(f"/m/resources/{secret.id}"),
        client.get(f"/m/resources/{secret.id}/download"),
        client.get(f"/m/resources/{archived.id}"),
        client.get("/m/resources/abc"),
        client.get("/m/resources/99999999999999999999999"),
    ]
    # then each is the friendly 404, with none of the content, and nothing counted
    assert [r.status_code for r in responses] == [404, 404, 404, 404, 404]
    assert all("没有找到" in r.text and "机密正文" not in r.text and "内部价目" not in r.text for r in responses)
    db.refresh(secret)
    assert (secret.reads_count, secret.downloads_count) == (0, 0)


def test_body_is_escaped_keeps_line_breaks_and_a_read_counts_once_a_day(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a guide whose body holds HTML and line breaks
    ws = make_workspace(db, clock=clock)
    customer, _member = make_member(db, workspace=ws, clock=clock)
    body = '第一步<script>alert("x")</script>\n第二步 <b>加粗</b>'
    guide = f.make_resource(db, workspace=ws, clock=clock, title="<i>指南</i>", body=body)
    db.commit()
    sign_in(client, ws.id, customer.id, clock)
    # when the member opens it twice
    first = client.get(f"/m/resources/{guide.id}")
    client.get(f"/m/resources/{guide.id}")
    # then the text is shown escaped, the line break kept (pre-wrap), and one read counted
    assert first.status_code == 200
    assert "<script>" not in first.text and "<b>" not in first.text and "<i>指南" not in first.text
    assert (
        'data-testid="resource-body">第一步&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;\n'
        "第二步 &lt;b&gt;加粗&lt;/b&gt;</div>"
    ) in first.text
    assert "white-space: pre-wrap" in first.text
    assert _counts(db, guide) == (1, 0)


def test_download_sends_the_file_with_its_name_and_nosniff_counted_once_a_day(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a published PDF named in Chinese
    ws = make_workspace(db, clock=clock)
    customer, _member = make_member(db, workspace=ws, clock=clock)
    pdf = f.make_resource(
        db, workspace=ws, clock=clock, title="价目表", kind=ResourceKind.FILE,
        file_name="价目表 2026.pdf", file_type=PDF_TYPE, file_data=f.PDF, file_size=len(f.PDF),
    )  # fmt: skip
    db.commit()
    sign_in(client, ws.id, customer.id, clock)
    # when the member downloads it twice
    page = client.get(f"/m/resources/{pdf.id}")
    first = client.get(f"/m/resources/{pdf.id}/download")
    second = client.get(f"/m/resources/{pdf.id}/download")
    # then the bytes come back as an attachment with the RFC 5987 name, nosniff, counted once
    assert f'href="/m/resources/{pdf.id}/download"' in page.text
    assert (first.status_code, first.content, second.content) == (200, f.PDF, f.PDF)
    assert first.headers["content-type"] == "application/pdf"
    assert first.headers["content-disposition"] == (
        "attachment; filename=\"___ 2026.pdf\"; filename*=UTF-8''%E4%BB%B7%E7%9B%AE%E8%A1%A8%202026.pdf"
    )
    assert first.headers["x-content-type-options"] == "nosniff"
    assert _counts(db, pdf) == (1, 1)


def _titles(html: str) -> list[str]:
    return re.findall(r'data-testid="resource-title">([^<]*)<', html)


def _counts(db: Session, resource: Resource) -> tuple[int, int]:
    db.expire_all()
    row = db.get(Resource, resource.id)
    assert row is not None
    return row.reads_count, row.downloads_count
