"""The short link console: list, create form, detail with chart, edit, delete, permissions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import ExperimentVariant, Role, ShortLink, User, Workspace
from siyu.shortlinks import service
from tests.factories import actor_for, make_channel, make_experiment, make_staff
from tests.web.conftest import login

TARGET = "https://shop.example.com/sample"


def _links(db: Session, workspace: Workspace) -> list[ShortLink]:
    return list(db.scalars(select(ShortLink).where(ShortLink.workspace_id == workspace.id).order_by(ShortLink.id)))


def test_list_shows_slug_url_target_campaign_clicks_uniques_and_expiry(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    link = service.create_link(
        db,
        actor=actor_for(workspace),
        target_url=TARGET,
        name="包裹卡",
        campaign="双11",
        expires_at=clock.now() + timedelta(days=2),
        clock=clock,
    )
    db.commit()
    client.get(f"/s/{link.slug}")
    login(client, user_with_role(Role.OPERATOR).email)
    page = client.get("/short-links").text
    assert f'data-slug="{link.slug}"' in page
    assert f'<code class="short-url">http://testserver/s/{link.slug}</code>' in page
    assert TARGET in page and "双11" in page and "包裹卡" in page
    assert '<td class="text-end link-clicks">1</td>' in page
    assert '<td class="text-end link-uniques">1</td>' in page
    assert "2026-11-25 10:00" in page  # expiry in the brand's time zone
    assert 'id="new-short-link"' in page


def test_create_through_the_form_then_see_its_page(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    channel = make_channel(db, workspace=workspace, clock=clock, name="短信渠道")
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    form = client.get("/short-links/new").text
    assert "短信渠道" in form and 'name="utm_source"' in form
    response = client.post(
        "/short-links",
        data={
            "csrf_token": token,
            "target_url": TARGET,
            "name": "短信 A",
            "campaign": "双11",
            "channel_id": str(channel.id),
            "expires_at": "2026-12-01T20:00",
            "utm_source": "sms",
            "utm_campaign": "1111",
        },
    )
    assert response.status_code == 303
    [link] = _links(db, workspace)
    assert response.headers["location"] == f"/short-links/{link.id}"
    assert (link.name, link.campaign, link.channel_id) == ("短信 A", "双11", channel.id)
    assert link.utm == {"utm_source": "sms", "utm_campaign": "1111"}
    assert link.expires_at is not None and link.expires_at.isoformat() == "2026-12-01T12:00:00+00:00"
    detail = client.get(response.headers["location"]).text
    assert "短链已创建" in detail
    assert f'<code id="short-url">http://testserver/s/{link.slug}</code>' in detail
    assert 'id="clicks-chart"' in detail and "/static/vendor/echarts.min.js" in detail
    assert 'data-kpi="clicks">0<' in detail


def test_bad_form_input_comes_back_with_the_error_and_nothing_is_written(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    for data, message in [
        ({"target_url": "ftp://files.example.com/x"}, "target_url must start with http:// or https://"),
        ({"target_url": TARGET, "slug": "x"}, "slug must be 3-32 characters"),
        ({"target_url": TARGET, "expires_at": "tomorrow"}, "expires_at is not a date and time"),
        ({"target_url": TARGET, "channel_id": "abc"}, "channel_id is not a valid id"),
    ]:
        response = client.post("/short-links", data={"csrf_token": token, **data})
        assert response.status_code == 422, data
        assert 'data-error="form"' in response.text and message in response.text
        assert 'id="short-link-form"' in response.text
    assert _links(db, workspace) == []


def test_detail_shows_variant_counts_edit_and_delete(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    experiment = make_experiment(db, workspace=workspace, clock=clock)
    for variant in db.scalars(select(ExperimentVariant).where(ExperimentVariant.experiment_id == experiment.id)):
        variant.content = {"target_url": f"https://shop.example.com/{variant.key}"}
    link = service.create_link(
        db, actor=actor_for(workspace), target_url=TARGET, experiment_id=experiment.id, clock=clock
    )
    db.commit()
    for n in range(6):
        client.cookies.clear()
        client.cookies.set("siyu_vid", f"visitor-cookie-{n:010d}")
        client.get(f"/s/{link.slug}")
    client.cookies.clear()
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get(f"/short-links/{link.id}").text
    assert 'id="variant-clicks"' in page
    counts = db.execute(select(func.count()).select_from(ShortLink).where(ShortLink.id == link.id)).scalar_one()
    assert counts == 1
    assert 'data-kpi="clicks">6<' in page
    assert 'data-variant="A"' in page and 'data-variant="B"' in page
    # edit: a new target and no expiry
    edited = client.post(
        f"/short-links/{link.id}/edit",
        data={"csrf_token": token, "target_url": "https://new.example.com/", "expires_at": ""},
    )
    assert (edited.status_code, edited.headers["location"]) == (303, f"/short-links/{link.id}")
    db.expire_all()
    assert link.target_url == "https://new.example.com/"
    bad = client.post(f"/short-links/{link.id}/edit", data={"csrf_token": token, "target_url": "nope"})
    assert bad.status_code == 422 and 'data-error="edit"' in bad.text
    # delete
    deleted = client.post(f"/short-links/{link.id}/delete", data={"csrf_token": token})
    assert (deleted.status_code, deleted.headers["location"]) == (303, "/short-links")
    assert client.get(f"/short-links/{link.id}").status_code == 404
    assert client.get(f"/s/{link.slug}").status_code == 410


def test_analyst_reads_but_cannot_change(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    link = service.create_link(db, actor=actor_for(workspace), target_url=TARGET, clock=clock)
    db.commit()
    token = login(client, user_with_role(Role.ANALYST).email)
    listing = client.get("/short-links")
    assert listing.status_code == 200 and 'id="new-short-link"' not in listing.text
    detail = client.get(f"/short-links/{link.id}")
    assert detail.status_code == 200 and 'id="edit-short-link"' not in detail.text
    assert client.get("/short-links/new").status_code == 403
    assert client.post("/short-links", data={"csrf_token": token, "target_url": TARGET}).status_code == 403
    assert client.post(f"/short-links/{link.id}/delete", data={"csrf_token": token}).status_code == 403
    assert (
        client.post(
            f"/short-links/{link.id}/edit", data={"csrf_token": token, "target_url": "https://x.example.com/"}
        ).status_code
        == 403
    )
    db.expire_all()
    assert [(x.target_url, x.deleted_at) for x in _links(db, workspace)] == [(TARGET, None)]


def test_staff_cannot_see_short_links(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/short-links").status_code == 403


def test_pages_render_in_english(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    link = service.create_link(db, actor=actor_for(workspace), target_url=TARGET, clock=clock)
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    client.post("/locale", data={"locale": "en", "next": "/short-links", "csrf_token": token})
    assert "New short link" in client.get("/short-links").text
    assert "UTM tags" in client.get("/short-links/new").text
    detail = client.get(f"/short-links/{link.id}").text
    assert "Clicks per day" in detail and "Never expires" in detail
    assert "This link does not exist" in client.get("/s/Nope123").text  # the console choice carries over
