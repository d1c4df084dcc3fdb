"""The overview, customer list, detail page and tag library, through the console."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers import repository
from siyu.customers.service.timeline import add_relationship, end_relationship
from siyu.customers.views import listing
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, CustomerTag, Identity, RemovedBy, Role, TagGroup, User, Workspace
from tests.factories import actor_for, make_customer, make_staff, make_tag
from tests.web.conftest import login


def test_home_shows_pool_relationships_and_30_day_adds_and_deletions(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    actor = actor_for(workspace)
    staff = make_staff(db, workspace=workspace, clock=clock)
    customers = [make_customer(db, actor=actor, clock=clock).customer for _ in range(3)]
    now = clock.now()
    old = add_relationship(
        db, actor=actor, customer_id=customers[0].id, staff_id=staff.id, added_at=now - timedelta(days=40), clock=clock
    )
    add_relationship(
        db, actor=actor, customer_id=customers[1].id, staff_id=staff.id, added_at=now - timedelta(days=2), clock=clock
    )
    gone = add_relationship(
        db, actor=actor, customer_id=customers[2].id, staff_id=staff.id, added_at=now - timedelta(days=1), clock=clock
    )
    end_relationship(
        db,
        actor=actor,
        relationship_id=gone.id,
        removed_by=RemovedBy.CUSTOMER,
        removed_at=now - timedelta(hours=3),
        clock=clock,
    )
    assert old.removed_at is None
    db.commit()
    login(client, user_with_role().email)
    page = client.get("/").text
    assert 'data-kpi="pool">3<' in page
    assert 'data-kpi="open">2<' in page
    assert 'data-kpi="adds">2<' in page
    assert 'data-kpi="deletions">1<' in page
    assert 'id="daily-chart"' in page
    assert "/static/vendor/echarts.min.js" in page


def test_staff_sees_only_their_own_customers(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    actor = actor_for(workspace)
    mine, theirs = (
        make_staff(db, workspace=workspace, clock=clock, name="小美"),
        make_staff(db, workspace=workspace, clock=clock, name="小丽"),
    )
    own = make_customer(db, actor=actor, clock=clock, name="林小姐", owner_staff_id=mine.id).customer
    other = make_customer(db, actor=actor, clock=clock, name="周先生", owner_staff_id=theirs.id).customer
    db.commit()
    login(client, user_with_role(Role.STAFF, staff_id=mine.id).email)
    page = client.get("/customers").text
    assert f'data-customer-id="{own.id}"' in page
    assert f'data-customer-id="{other.id}"' not in page
    assert 'id="filter-count">1<' in page
    assert client.get(f"/customers/{other.id}").status_code == 404
    assert client.get(f"/customers/{own.id}").status_code == 200


def test_analyst_sees_masked_phones_in_list_detail_and_export(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, phone="13800138000", name="林小姐").customer
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    listing_page = client.get("/customers").text
    assert "138****8000" in listing_page
    assert "13800138000" not in listing_page
    detail = client.get(f"/customers/{customer.id}").text
    assert "138****8000" in detail
    assert "13800138000" not in detail
    assert 'name="phone"' not in detail  # no edit form for a masked value
    export = client.get("/customers/export.csv")
    assert export.status_code == 200
    assert "138****8000" in export.text
    assert "13800138000" not in export.text


def test_operator_sees_whole_phones_and_exports_the_current_filter(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    actor = actor_for(workspace)
    make_customer(db, actor=actor, clock=clock, phone="13800138000", name="林小姐")
    make_customer(db, actor=actor, clock=clock, phone="13900139000", name="周先生")
    db.commit()
    login(client, user_with_role(Role.OPERATOR).email)
    assert "13800138000" in client.get("/customers").text
    export = client.get("/customers/export.csv", params={"q": "林"})
    lines = export.text.lstrip("\ufeff").strip().splitlines()
    assert len(lines) == 2
    assert "13800138000" in lines[1]
    assert export.headers["content-disposition"].startswith("attachment;")


def test_htmx_search_by_phone_renders_only_the_results(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    actor = actor_for(workspace)
    wanted = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    other = make_customer(db, actor=actor, clock=clock, phone="13900139000").customer
    db.commit()
    login(client, user_with_role().email)
    response = client.get(
        "/customers", params={"q": "+86 138-0013-8000"}, headers={"HX-Request": "true", "HX-Target": "customer-results"}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="customer-results">')
    assert "<html" not in response.text
    assert f'data-customer-id="{wanted.id}"' in response.text
    assert f'data-customer-id="{other.id}"' not in response.text


def test_list_pages_with_a_next_link(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(listing, "PAGE_SIZE", 2)
    actor = actor_for(workspace)
    ids = [make_customer(db, actor=actor, clock=clock, lifecycle_stage="active").customer.id for _ in range(3)]
    db.commit()
    login(client, user_with_role().email)
    first = client.get("/customers", params={"lifecycle_stage": "active"}).text
    assert [f'data-customer-id="{i}"' in first for i in ids] == [False, True, True]
    next_url = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert "lifecycle_stage=active" in next_url
    second = client.get(next_url).text
    assert [f'data-customer-id="{i}"' in second for i in ids] == [True, False, False]
    assert 'rel="next"' not in second


def test_bulk_tag_applies_to_every_customer_matching_the_filter(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    actor = actor_for(workspace)
    for stage in ("active", "active", "dormant"):
        make_customer(db, actor=actor, clock=clock, lifecycle_stage=stage)
    tag = make_tag(db, workspace=workspace, name="复购")
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get("/customers", params={"lifecycle_stage": "active"}).text
    assert 'id="filter-count">2<' in page
    assert "全部 2 位客户" in page
    response = client.post(
        "/customers/bulk-tag", data={"tag": str(tag.id), "op": "add", "lifecycle_stage": "active", "csrf_token": token}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/customers?lifecycle_stage=active"
    assert "已为 2 位客户打上标签" in client.get(response.headers["location"]).text
    assert db.scalar(select(func.count(CustomerTag.id)).where(CustomerTag.tag_id == tag.id)) == 2
    client.post("/customers/bulk-tag", data={"tag": str(tag.id), "op": "remove", "csrf_token": token})
    assert db.scalar(select(func.count(CustomerTag.id)).where(CustomerTag.tag_id == tag.id)) == 0


def test_profile_edit_and_a_bad_identity_shows_the_error_by_its_form(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, phone="13800138000", name="林").customer
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    saved = client.post(
        f"/customers/{customer.id}/profile",
        data={
            "name": "林小姐",
            "city": "杭州",
            "phone": "13800138000",
            "lifecycle_stage": "active",
            "csrf_token": token,
        },
    )
    assert saved.status_code == 303
    db.expire_all()
    fresh = db.get(Customer, customer.id)
    assert fresh is not None
    assert (fresh.name, fresh.city, fresh.phone, fresh.lifecycle_stage) == (
        "林小姐",
        "杭州",
        "+8613800138000",
        "active",
    )
    bad = client.post(
        f"/customers/{customer.id}/identities", data={"type": "phone", "value": "12345", "csrf_token": token}
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")
    assert 'data-error="identity"' in bad.text
    assert "invalid phone number" in bad.text
    assert db.scalar(select(func.count(Identity.id)).where(Identity.customer_id == customer.id)) == 1


def test_merge_from_the_detail_page_and_undo_it(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    actor = actor_for(workspace)
    survivor = make_customer(db, actor=actor, clock=clock, phone="13800138000", name="林小姐").customer
    merged = make_customer(db, actor=actor, clock=clock, identities=[("taobao", "tb_lin")], city="杭州").customer
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    response = client.post(f"/customers/{survivor.id}/merge", data={"merged_id": str(merged.id), "csrf_token": token})
    assert response.status_code == 303
    page = client.get(f"/customers/{survivor.id}").text
    assert 'id="identity-count">2<' in page
    away = client.get(f"/customers/{merged.id}").text
    assert 'id="merged-banner"' in away
    assert f'href="/customers/{survivor.id}"' in away
    merge_id = int(page.split('data-merge-id="')[1].split('"')[0])
    undone = client.post(f"/merges/{merge_id}/undo", data={"customer_id": str(survivor.id), "csrf_token": token})
    assert undone.status_code == 303
    assert 'id="identity-count">1<' in client.get(f"/customers/{survivor.id}").text
    restored = client.get(f"/customers/{merged.id}").text
    assert 'id="merged-banner"' not in restored
    assert 'value="杭州"' in restored
    again = client.post(f"/merges/{merge_id}/undo", data={"customer_id": str(survivor.id), "csrf_token": token})
    assert again.status_code == 409
    assert "this merge was already undone" in again.text


def test_merging_a_customer_into_itself_is_refused_on_the_page(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    customer = make_customer(db, actor=actor_for(workspace), clock=clock).customer
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    response = client.post(f"/customers/{customer.id}/merge", data={"merged_id": str(customer.id), "csrf_token": token})
    assert response.status_code == 422
    assert 'data-error="merge"' in response.text


def test_export_and_erase_need_the_erase_permission_and_a_confirmation(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, phone="13800138000", name="林小姐").customer
    db.commit()
    operator = TestClient(client.app, follow_redirects=False)
    operator_token = login(operator, user_with_role(Role.OPERATOR).email)
    assert operator.get(f"/customers/{customer.id}/export.json").status_code == 403
    assert (
        operator.post(
            f"/customers/{customer.id}/erase", data={"confirm": str(customer.id), "csrf_token": operator_token}
        ).status_code
        == 403
    )
    token = login(client, user_with_role(Role.ADMIN).email)
    document = client.get(f"/customers/{customer.id}/export.json")
    assert document.status_code == 200
    assert json.loads(document.text)["customer"]["phone"] == "+8613800138000"
    assert client.get(f"/customers/{customer.id}/erase").status_code == 200
    unconfirmed = client.post(f"/customers/{customer.id}/erase", data={"confirm": "", "csrf_token": token})
    assert unconfirmed.status_code == 400
    db.expire_all()
    assert repository.identities_of(db, customer.id)
    erased = client.post(f"/customers/{customer.id}/erase", data={"confirm": str(customer.id), "csrf_token": token})
    assert erased.status_code == 303
    db.expire_all()
    fresh = db.get(Customer, customer.id)
    assert fresh is not None and fresh.erased_at is not None and fresh.phone is None
    assert list(repository.identities_of(db, customer.id)) == []


def test_tag_library_creates_groups_and_tags_and_counts_customers(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    assert client.post("/tags/groups", data={"name": "肤质", "csrf_token": token}).status_code == 303
    group_id = db.scalar(select(TagGroup.id).where(TagGroup.name == "肤质"))
    assert (
        client.post("/tags", data={"group_id": str(group_id), "name": "干皮", "csrf_token": token}).status_code == 303
    )
    duplicate = client.post("/tags", data={"group_id": str(group_id), "name": "干皮", "csrf_token": token})
    assert duplicate.status_code == 409
    assert f'data-error="group-{group_id}"' in duplicate.text
    customer = make_customer(db, actor=actor_for(workspace), clock=clock).customer
    db.commit()
    page = client.get("/tags").text
    tag_id = int(page.split("/customers?tag_id=")[1].split('"')[0])
    client.post(f"/customers/{customer.id}/tags", data={"tag_id": str(tag_id), "csrf_token": token})
    page = client.get("/tags").text
    assert '<td class="text-end tag-count">1</td>' in page
    assert client.post(f"/tags/{tag_id}/delete", data={"csrf_token": token}).status_code == 303
    assert "干皮" not in client.get("/tags").text
