"""Creating, changing and deleting short links; per-recipient links; the rules behind them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.experiments.assignment import assign_variant
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import AuditEntry, ExperimentExposure, ExperimentMetric, ExperimentStatus, Role, ShortLink, Workspace
from siyu.shortlinks import service, slugs
from siyu.shortlinks.errors import ShortLinkExpired, ShortLinkNotFound, SlugTaken
from tests.factories import actor_for, make_channel, make_customer, make_experiment, make_workspace

TARGET = "https://shop.example.com/sample"


def _count(db: Session, model: type, **where: object) -> int:
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return int(db.scalar(query) or 0)


def test_create_campaign_link_with_random_slug_channel_utm_and_audit(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given an operator and a channel of the workspace
    actor = actor_for(workspace, role=Role.OPERATOR)
    channel = make_channel(db, workspace=workspace, clock=clock, name="短信")
    # when a link is created
    link = service.create_link(
        db,
        actor=actor,
        target_url=TARGET,
        name="双11 短信",
        campaign="双11",
        channel_id=channel.id,
        utm={"utm_source": "sms", "utm_campaign": "1111"},
        expires_at=clock.now() + timedelta(days=30),
        clock=clock,
    )
    # then it has a 7-character base62 slug and everything given
    assert re.fullmatch(r"[0-9A-Za-z]{7}", link.slug)
    assert (link.target_url, link.name, link.campaign, link.channel_id) == (TARGET, "双11 短信", "双11", channel.id)
    assert link.utm == {"utm_source": "sms", "utm_campaign": "1111"}
    assert link.expires_at == clock.now() + timedelta(days=30)
    audit = db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "short_link")).all()
    assert [(a.action, a.entity_id) for a in audit] == [("create", str(link.id))]


def test_custom_slug_is_kept_and_a_taken_one_is_409(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, slug="card-1111", clock=clock)
    assert link.slug == "card-1111"
    # the slug space is global: another brand cannot take it either
    other = make_workspace(db, clock=clock)
    with pytest.raises(SlugTaken) as caught:
        service.create_link(db, actor=actor_for(other), target_url=TARGET, slug="card-1111", clock=clock)
    assert (caught.value.status_code, caught.value.details) == (409, {"field": "slug"})


def test_a_random_slug_collision_is_retried(
    db: Session, clock: FrozenClock, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a link holding slug "aaaaaaa" and a random source that yields it again first
    actor = actor_for(workspace)
    service.create_link(db, actor=actor, target_url=TARGET, slug="aaaaaaa", clock=clock)
    letters = iter("a" * 7 + "b" * 7)
    monkeypatch.setattr(slugs.secrets, "choice", lambda _alphabet: next(letters))
    # when a random-slug link is created
    link = service.create_link(db, actor=actor, target_url=TARGET, clock=clock)
    # then the collision was retried with the next slug
    assert link.slug == "bbbbbbb"
    assert _count(db, ShortLink, workspace_id=workspace.id) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_url": "ftp://x.example.com"}, "target_url"),
        ({"slug": "no"}, "slug"),
        ({"utm": {"utm_foo": "x"}}, "utm.utm_foo"),
        ({"name": "n" * 101}, "name"),
        ({"campaign": "c" * 101}, "campaign"),
        ({"channel_id": 987654}, "channel_id"),
        ({"experiment_id": 987654}, "experiment_id"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    db: Session, clock: FrozenClock, workspace: Workspace, kwargs: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {"target_url": TARGET} | kwargs
    with pytest.raises(InvalidInput) as caught:
        service.create_link(db, actor=actor_for(workspace), clock=clock, **values)  # type: ignore[arg-type]
    assert caught.value.details["field"] == field
    assert _count(db, ShortLink, workspace_id=workspace.id) == 0


def test_channel_and_experiment_of_another_workspace_and_past_expiry_are_refused(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    other = make_workspace(db, clock=clock)
    foreign_channel = make_channel(db, workspace=other, clock=clock)
    foreign_experiment = make_experiment(db, workspace=other, clock=clock)
    actor = actor_for(workspace)
    for kwargs, field in [
        ({"channel_id": foreign_channel.id}, "channel_id"),
        ({"experiment_id": foreign_experiment.id}, "experiment_id"),
        ({"expires_at": clock.now()}, "expires_at"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            service.create_link(db, actor=actor, target_url=TARGET, clock=clock, **kwargs)  # type: ignore[arg-type]
        assert caught.value.details["field"] == field
    assert _count(db, ShortLink, workspace_id=workspace.id) == 0


def test_analyst_cannot_create_links(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    with pytest.raises(PermissionDenied):
        service.create_link(db, actor=actor_for(workspace, role=Role.ANALYST), target_url=TARGET, clock=clock)
    assert _count(db, ShortLink, workspace_id=workspace.id) == 0


def test_recipient_links_are_unguessable_and_idempotent(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    # given a campaign link and three customers
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, utm={"utm_source": "sms"}, clock=clock)
    customers = [make_customer(db, actor=actor, clock=clock).customer.id for _ in range(3)]
    # when links are made for two of them, then for all three (one repeated)
    first = service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=customers[:2], clock=clock)
    again = service.create_recipient_links(
        db, actor=actor, link_id=link.id, customer_ids=[customers[1], *customers], clock=clock
    )
    # then each customer has exactly one link, and repeated calls return the same slugs
    assert list(first) == customers[:2]
    assert list(again.links) == [customers[1], customers[0], customers[2]]
    assert again.created == 1
    assert {c: first[c].slug for c in customers[:2]} == {c: again.links[c].slug for c in customers[:2]}
    assert _count(db, ShortLink, parent_id=link.id) == 3
    for customer_id, child in again.links.items():
        assert re.fullmatch(r"[0-9A-Za-z]{12}", child.slug)
        assert (child.parent_id, child.customer_id, child.target_url) == (link.id, customer_id, TARGET)
        assert child.utm == {"utm_source": "sms"}
    assert len({child.slug for child in again.links.values()}) == 3


def test_recipient_links_refuse_unknown_or_foreign_customers_and_write_nothing(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, clock=clock)
    mine = make_customer(db, actor=actor, clock=clock).customer.id
    other = make_workspace(db, clock=clock)
    foreign = make_customer(db, actor=actor_for(other), clock=clock).customer.id
    with pytest.raises(InvalidInput) as caught:
        service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=[mine, foreign, 99999], clock=clock)
    assert caught.value.details == {"field": "customer_ids", "unknown": [foreign, 99999]}
    assert _count(db, ShortLink, parent_id=link.id) == 0


def test_recipient_links_need_a_live_campaign_link(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    actor = actor_for(workspace)
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    expiring = service.create_link(
        db, actor=actor, target_url=TARGET, expires_at=clock.now() + timedelta(hours=1), clock=clock
    )
    child = service.links_for_recipients(db, actor=actor, link_id=expiring.id, customer_ids=[customer], clock=clock)
    # a recipient link is not a campaign link
    with pytest.raises(InvalidInput):
        service.links_for_recipients(db, actor=actor, link_id=child[customer].id, customer_ids=[customer], clock=clock)
    clock.advance(timedelta(hours=2))
    with pytest.raises(ShortLinkExpired):
        service.links_for_recipients(db, actor=actor, link_id=expiring.id, customer_ids=[customer], clock=clock)
    deleted = service.create_link(db, actor=actor, target_url=TARGET, clock=clock)
    service.delete_link(db, actor=actor, link_id=deleted.id, clock=clock)
    with pytest.raises(ShortLinkNotFound):
        service.links_for_recipients(db, actor=actor, link_id=deleted.id, customer_ids=[customer], clock=clock)


def test_recipient_links_of_a_click_rate_experiment_are_its_exposures(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a link running a click-rate experiment with arms A and B
    actor = actor_for(workspace)
    experiment = make_experiment(db, workspace=workspace, clock=clock, metric=ExperimentMetric.CLICK_RATE)
    link = service.create_link(db, actor=actor, target_url=TARGET, experiment_id=experiment.id, clock=clock)
    customers = [make_customer(db, actor=actor, clock=clock).customer.id for _ in range(6)]
    # when recipient links are made (twice: a retried send)
    service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=customers, clock=clock)
    service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=customers, clock=clock)
    # then each customer is exposed once, as visitor c{id}, in the arm the hash assigns
    rows = db.execute(
        select(ExperimentExposure.visitor_id, ExperimentExposure.variant_key, ExperimentExposure.customer_id).where(
            ExperimentExposure.experiment_id == experiment.id
        )
    ).all()
    expected = {(f"c{c}", assign_variant(experiment.id, f"c{c}", [("A", 1), ("B", 1)]), c) for c in customers}
    assert set(rows) == expected and len(rows) == 6
    assert service.recipient_variants(db, link=link, customer_ids=customers) == {c: k for (_v, k, c) in expected}


def test_no_exposures_for_other_metrics_or_experiments_not_running(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    actor = actor_for(workspace)
    add_rate = make_experiment(db, workspace=workspace, clock=clock, metric=ExperimentMetric.ADD_RATE)
    draft = make_experiment(
        db, workspace=workspace, clock=clock, metric=ExperimentMetric.CLICK_RATE, status=ExperimentStatus.DRAFT
    )
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    for experiment in (add_rate, draft):
        link = service.create_link(db, actor=actor, target_url=TARGET, experiment_id=experiment.id, clock=clock)
        service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=[customer], clock=clock)
    assert _count(db, ExperimentExposure, workspace_id=workspace.id) == 0


def test_update_changes_target_and_expiry_and_recipient_links_follow(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    child = service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=[customer], clock=clock)[
        customer
    ]
    expires = clock.now() + timedelta(days=3)
    service.update_link(
        db, actor=actor, link_id=link.id, target_url="https://new.example.com/", expires_at=expires, clock=clock
    )
    db.expire_all()
    assert (link.target_url, link.expires_at) == ("https://new.example.com/", expires)
    assert (child.target_url, child.expires_at) == ("https://new.example.com/", expires)
    # None removes the expiry; KEEP (the default) leaves the target
    service.update_link(db, actor=actor, link_id=link.id, expires_at=None, clock=clock)
    db.expire_all()
    assert (link.target_url, link.expires_at, child.expires_at) == ("https://new.example.com/", None, None)
    updates = db.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity_type == "short_link", AuditEntry.action == "update")
        .order_by(AuditEntry.id)  # PostgreSQL returns rows in no particular order without it
    ).all()
    assert [u.after for u in updates] == [
        {"target_url": "https://new.example.com/", "expires_at": expires.isoformat()},
        {"expires_at": None},
    ]
    with pytest.raises(InvalidInput) as caught:
        service.update_link(db, actor=actor, link_id=link.id, target_url="mailto:a@b.c", clock=clock)
    assert caught.value.details == {"field": "target_url"}


def test_delete_is_soft_and_takes_recipient_links_along(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    child = service.links_for_recipients(db, actor=actor, link_id=link.id, customer_ids=[customer], clock=clock)[
        customer
    ]
    service.delete_link(db, actor=actor, link_id=link.id, clock=clock)
    db.expire_all()
    assert (link.deleted_at, child.deleted_at) == (clock.now(), clock.now())
    assert _count(db, ShortLink, workspace_id=workspace.id) == 2  # rows stay for the click history
    with pytest.raises(ShortLinkNotFound):
        service.get_link(db, workspace_id=workspace.id, link_id=link.id)
    with pytest.raises(ShortLinkNotFound):
        service.delete_link(db, actor=actor, link_id=link.id, clock=clock)
    assert service.list_links(db, workspace_id=workspace.id).items == []


def test_list_shows_campaign_links_newest_first_with_a_cursor(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    actor = actor_for(workspace)
    links = [service.create_link(db, actor=actor, target_url=TARGET, campaign="双11", clock=clock) for _ in range(3)]
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    service.links_for_recipients(db, actor=actor, link_id=links[0].id, customer_ids=[customer], clock=clock)
    other = make_workspace(db, clock=clock)
    service.create_link(db, actor=actor_for(other), target_url=TARGET, clock=clock)
    first = service.list_links(db, workspace_id=workspace.id, limit=2)
    assert [x.id for x in first.items] == [links[2].id, links[1].id]
    rest = service.list_links(db, workspace_id=workspace.id, limit=2, cursor=first.next_cursor)
    assert ([x.id for x in rest.items], rest.next_cursor) == ([links[0].id], None)
    assert service.list_links(db, workspace_id=workspace.id, campaign="618").items == []


def test_a_recipient_slug_collision_is_retried(
    db: Session, clock: FrozenClock, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a link already holding slug "aaaaaaaaaaaa" and a random source that yields it first
    actor = actor_for(workspace)
    link = service.create_link(db, actor=actor, target_url=TARGET, slug="a" * 12, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer.id
    letters = iter("a" * 12 + "b" * 12)
    monkeypatch.setattr(slugs.secrets, "choice", lambda _alphabet: next(letters))
    # when a recipient link is made
    made = service.create_recipient_links(db, actor=actor, link_id=link.id, customer_ids=[customer], clock=clock)
    # then the colliding insert was skipped and retried with a fresh slug
    assert (made.created, made.links[customer].slug) == (1, "b" * 12)
