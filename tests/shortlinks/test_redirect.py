"""The public redirect `/s/{slug}`: 302 and the click row, friendly 404/410 pages, experiments, speed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, func, select
from sqlalchemy.orm import Session

from siyu.experiments.assignment import assign_variant
from siyu.kit.clock import FrozenClock
from siyu.models import (
    CustomerEvent,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentVariant,
    ShortLinkClick,
    Workspace,
)
from siyu.shortlinks import service
from siyu.web.visitor import VISITOR_COOKIE, visitor_id
from tests.factories import actor_for, make_customer, make_experiment

TARGET = "https://shop.example.com/sample?sku=42"
COOKIE = "visitor-cookie-0123456789"
IP_HASH = hashlib.sha256(b"test-secret:testclient").hexdigest()


def _clicks(db: Session) -> list[ShortLinkClick]:
    return list(db.scalars(select(ShortLinkClick).order_by(ShortLinkClick.id)))


@contextmanager
def counting(connection: Connection) -> Iterator[list[str]]:
    """Statements (SELECT/INSERT/UPDATE/DELETE) run on the test connection inside the block."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", before)


def _as_visitor(client: TestClient, cookie: str) -> TestClient:
    """The client as a browser holding this visitor cookie."""
    client.cookies.clear()
    client.cookies.set(VISITOR_COOKIE, cookie)
    return client


def _variant_urls(db: Session, experiment_id: int) -> None:
    for variant in db.scalars(select(ExperimentVariant).where(ExperimentVariant.experiment_id == experiment_id)):
        variant.content = {"target_url": f"https://shop.example.com/{variant.key.lower()}"}
    db.flush()


def test_click_redirects_302_with_utm_and_records_the_click(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, connection: Connection
) -> None:
    # given a campaign link with UTM tags, one of which the target already carries
    link = service.create_link(
        db,
        actor=actor_for(workspace),
        target_url=TARGET + "&utm_source=card",
        utm={"utm_source": "sms", "utm_campaign": "1111"},
        clock=clock,
    )
    db.commit()
    # when a new visitor clicks
    with counting(connection) as statements:
        response = client.get(f"/s/{link.slug}", headers={"user-agent": "Mozilla/5.0 (iPhone) MicroMessenger"})
    # then they are sent to the target with the missing tag appended, and given a visitor cookie
    assert response.status_code == 302
    assert response.headers["location"] == TARGET + "&utm_source=card&utm_campaign=1111"
    assert response.headers["cache-control"] == "no-store"
    cookie = response.cookies[VISITOR_COOKIE]
    # and one click row holds the hashed visitor and IP: one SELECT and one INSERT in all
    [click] = _clicks(db)
    assert (click.link_id, click.campaign_link_id, click.customer_id, click.variant) == (link.id, link.id, None, None)
    assert (click.visitor_id, click.ip_hash) == (visitor_id(cookie), IP_HASH)
    assert click.user_agent == "Mozilla/5.0 (iPhone) MicroMessenger"
    assert click.clicked_at == clock.now()
    assert [s.lstrip().split(" ", 1)[0] for s in statements] == ["SELECT", "INSERT"]
    # a second click from the same browser keeps its visitor id
    client.get(f"/s/{link.slug}")
    assert [c.visitor_id for c in _clicks(db)] == [visitor_id(cookie)] * 2


def test_per_recipient_click_identifies_the_customer_on_their_timeline(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, connection: Connection
) -> None:
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, campaign="双11", clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer
    child = service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=[customer.id], clock=clock)[
        customer.id
    ]
    db.commit()
    with counting(connection) as statements:
        response = _as_visitor(client, COOKIE).get(f"/s/{child.slug}")
    assert (response.status_code, response.headers["location"]) == (302, TARGET)
    [click] = _clicks(db)
    assert (click.link_id, click.campaign_link_id, click.customer_id) == (child.id, link.id, customer.id)
    assert click.visitor_id == visitor_id(COOKIE)
    [clicked] = db.scalars(select(CustomerEvent).where(CustomerEvent.type == "link.clicked")).all()
    assert clicked.customer_id == customer.id
    assert clicked.idempotency_key == f"short_link_click:{click.id}"
    assert clicked.properties == {
        "short_link_id": link.id,
        "slug": child.slug,
        "campaign": "双11",
        "variant": None,
        "click_id": click.id,
    }
    # one SELECT (link, campaign link, experiment, customer) and two INSERTs (click, event)
    assert [s.lstrip().split(" ", 1)[0] for s in statements] == ["SELECT", "INSERT", "INSERT"]


@pytest.mark.parametrize("slug", ["ab", "a" * 33, "bad$slug", "a.b", "a/b/c", "%E5%8F%8C"])
def test_malformed_slugs_get_the_friendly_404_page(
    client: TestClient, db: Session, slug: str, connection: Connection
) -> None:
    with counting(connection) as statements:
        response = client.get(f"/s/{slug}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="short-link-unavailable"' in response.text and "链接不存在" in response.text
    assert 'name="viewport"' in response.text
    assert statements == []  # refused before any lookup
    assert _clicks(db) == []


def test_unknown_slug_is_a_404_page_in_the_visitors_language(client: TestClient, db: Session) -> None:
    zh = client.get("/s/Nope123")
    en = client.get("/s/Nope123", headers={"accept-language": "en-US,en;q=0.9"})
    assert (zh.status_code, en.status_code) == (404, 404)
    assert '<html lang="zh-CN">' in zh.text and "链接不存在" in zh.text
    assert '<html lang="en">' in en.text and "This link does not exist" in en.text
    assert _clicks(db) == []


def test_expired_and_deleted_links_get_the_410_page_and_no_click(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    actor = actor_for(workspace)
    expiring = service.create_link(
        db, actor=actor, target_url=TARGET, expires_at=clock.now() + timedelta(hours=1), clock=clock
    )
    deleted = service.create_link(db, actor=actor, target_url=TARGET, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    children = [
        service.links_for_recipients(db, actor=actor, link_id=parent.id, customer_ids=[customer], clock=clock)[customer]
        for parent in (expiring, deleted)
    ]
    service.delete_link(db, actor=actor, link_id=deleted.id, clock=clock)
    db.commit()
    assert client.get(f"/s/{expiring.slug}").status_code == 302
    clock.advance(timedelta(hours=1))
    for slug in (expiring.slug, deleted.slug, children[0].slug, children[1].slug):
        response = client.get(f"/s/{slug}")
        assert response.status_code == 410, slug
        assert "链接已失效" in response.text
    assert len(_clicks(db)) == 1


def test_recipient_link_follows_its_campaign_links_new_target(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, utm={"utm_medium": "sms"}, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    child = service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=[customer], clock=clock)[
        customer
    ]
    service.update_link(db, actor=actor, link_id=link.id, target_url="https://new.example.com/p", clock=clock)
    db.commit()
    assert client.get(f"/s/{child.slug}").headers["location"] == "https://new.example.com/p?utm_medium=sms"


def test_experiment_split_is_deterministic_per_visitor(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a link split across an add-rate experiment whose arms point to /a and /b
    experiment = make_experiment(db, workspace=workspace, clock=clock, metric=ExperimentMetric.ADD_RATE)
    _variant_urls(db, experiment.id)
    link = service.create_link(
        db,
        actor=actor_for(workspace),
        target_url=TARGET,
        experiment_id=experiment.id,
        utm={"utm_source": "card"},
        clock=clock,
    )
    db.commit()
    # when twelve visitors click, each twice
    seen: dict[str, str] = {}
    for n in range(12):
        cookie = f"visitor-cookie-{n:010d}"
        first = _as_visitor(client, cookie).get(f"/s/{link.slug}").headers["location"]
        again = client.get(f"/s/{link.slug}").headers["location"]
        # then each is sent to their hashed arm, the same both times
        key = assign_variant(experiment.id, visitor_id(cookie), [("A", 1), ("B", 1)])
        assert first == again == f"https://shop.example.com/{key.lower()}?utm_source=card"
        seen[visitor_id(cookie)] = key
    assert set(seen.values()) == {"A", "B"}
    # and each visitor was exposed once, clicks carry the arm
    exposures = db.execute(
        select(ExperimentExposure.visitor_id, ExperimentExposure.variant_key).where(
            ExperimentExposure.experiment_id == experiment.id
        )
    ).all()
    assert dict(exposures) == seen
    assert {(c.visitor_id, c.variant) for c in _clicks(db)} == set(seen.items())
    assert len(_clicks(db)) == 24


def test_click_on_a_recipient_link_converts_the_click_rate_exposure(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    actor = actor_for(workspace)
    experiment = make_experiment(db, workspace=workspace, clock=clock, metric=ExperimentMetric.CLICK_RATE)
    _variant_urls(db, experiment.id)
    link = service.create_link(db, actor=actor, target_url=TARGET, experiment_id=experiment.id, clock=clock)
    customers = [make_customer(db, actor=actor, clock=clock).customer.id for _ in range(2)]
    children = service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=customers, clock=clock)
    db.commit()
    clock.advance(timedelta(minutes=5))
    response = client.get(f"/s/{children[customers[0]].slug}")
    key = assign_variant(experiment.id, f"c{customers[0]}", [("A", 1), ("B", 1)])
    assert response.headers["location"] == f"https://shop.example.com/{key.lower()}"
    exposures = {
        e.visitor_id: e
        for e in db.scalars(select(ExperimentExposure).where(ExperimentExposure.experiment_id == experiment.id))
    }
    assert exposures[f"c{customers[0]}"].converted_at == clock.now()
    assert exposures[f"c{customers[1]}"].converted_at is None
    [click] = _clicks(db)
    assert click.variant == key
    # a click on the campaign link itself gets a stable arm but no exposure (it was never "sent")
    _as_visitor(client, COOKIE).get(f"/s/{link.slug}")
    assert db.scalar(select(func.count()).select_from(ExperimentExposure)) == 2


def test_a_variant_url_that_is_not_http_falls_back_to_the_link_target(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    experiment = make_experiment(db, workspace=workspace, clock=clock, variants=[("A", 1)])
    link = service.create_link(
        db, actor=actor_for(workspace), target_url=TARGET, experiment_id=experiment.id, clock=clock
    )
    variant = db.scalar(select(ExperimentVariant).where(ExperimentVariant.experiment_id == experiment.id))
    assert variant is not None
    variant.content = {"target_url": "javascript:alert(1)"}
    db.commit()
    response = client.get(f"/s/{link.slug}")
    assert (response.status_code, response.headers["location"]) == (302, TARGET)
