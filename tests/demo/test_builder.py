"""The demo brand: built once, consistent with itself, and the same for the same seed."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from siyu.auth.service import authenticate_password
from siyu.db import Database
from siyu.demo import BRAND_NAME, DEMO_EMAIL, DEMO_PASSWORD, USERS, build_demo
from siyu.demo.catalog import PHONE_PREFIXES
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Unauthenticated
from siyu.kit.phone import normalize_phone
from siyu.models import (
    AttributeDefinition,
    AuditEntry,
    Channel,
    ChannelCostEntry,
    CommunityGroup,
    Consent,
    ConsentStatus,
    Customer,
    CustomerEvent,
    CustomerTag,
    Experiment,
    ExperimentExposure,
    Gender,
    Identity,
    IdentityType,
    LiveCode,
    LiveCodeRoute,
    LiveCodeRouteDay,
    LiveCodeScan,
    Membership,
    Order,
    Region,
    Relationship,
    Role,
    Staff,
    Store,
    Tag,
    TagGroup,
    User,
    Workspace,
)

CUSTOMERS = 300
TABLES = (
    Workspace,
    User,
    Membership,
    Region,
    Store,
    Staff,
    TagGroup,
    Tag,
    AttributeDefinition,
    Customer,
    Identity,
    CustomerTag,
    Consent,
    Relationship,
    CustomerEvent,
    AuditEntry,
    Channel,
    ChannelCostEntry,
    LiveCode,
    LiveCodeRoute,
    LiveCodeRouteDay,
    LiveCodeScan,
    CommunityGroup,
    Experiment,
    ExperimentExposure,
    Order,
)


@pytest.fixture
def built(database: Database, clock: FrozenClock) -> list[int]:
    """Build the demo with 300 customers; returns the progress reports."""
    reports: list[int] = []
    assert build_demo(database, customers=CUSTOMERS, clock=clock, progress=reports.append) is True
    return reports


def _counts(db: Session) -> dict[str, int]:
    return {model.__tablename__: db.scalar(select(func.count()).select_from(model)) or 0 for model in TABLES}


def test_the_brand_has_its_organisation_and_customers(built: list[int], db: Session) -> None:
    workspace = db.scalar(select(Workspace).where(Workspace.slug == "default"))
    assert workspace is not None
    assert workspace.name == BRAND_NAME
    assert built == [CUSTOMERS]
    assert db.scalar(select(func.count()).select_from(Region)) == 3
    assert db.scalar(select(func.count()).select_from(Store)) == 8
    assert db.scalar(select(func.count()).select_from(Staff).where(Staff.wecom_user_id.is_not(None))) == 30
    assert set(db.scalars(select(AttributeDefinition.key))) == {"body_size", "preferred_style", "vip_card_no"}
    live = select(func.count()).where(
        Customer.workspace_id == workspace.id, Customer.merged_into_id.is_(None), Customer.erased_at.is_(None)
    )
    assert db.scalar(live) == CUSTOMERS
    genders = Counter(db.scalars(select(Customer.gender)))
    assert genders[Gender.FEMALE] > CUSTOMERS * 0.75
    audit = db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "demo")).one()
    assert (audit.actor_type, audit.after) == (
        "system",
        {"brand": BRAND_NAME, "customers": CUSTOMERS, "staff": 30, "seed": 7},
    )


def test_every_customer_has_a_valid_unique_phone_identity(built: list[int], db: Session) -> None:
    phones = {customer_id: phone for customer_id, phone in db.execute(select(Customer.id, Customer.phone))}
    phone_identities = db.execute(select(Identity.customer_id, Identity.value).where(Identity.type == "phone"))
    identities = {customer_id: value for customer_id, value in phone_identities}
    assert identities == phones
    assert len(set(phones.values())) == CUSTOMERS
    for phone in phones.values():
        assert phone is not None
        assert normalize_phone(phone) == phone
        assert phone.startswith("+861")
        assert len(phone) == 14


def test_customers_are_young_and_tagged(built: list[int], db: Session, clock: FrozenClock) -> None:
    today = clock.now().date()
    for birthday in db.scalars(select(Customer.birthday).where(Customer.birthday.is_not(None))):
        assert birthday is not None
        assert today.replace(year=today.year - 36) < birthday <= today.replace(year=today.year - 18)
    tags_per_customer = Counter(db.scalars(select(CustomerTag.customer_id)))
    assert len(tags_per_customer) == CUSTOMERS
    assert set(tags_per_customer.values()) <= {1, 2, 3, 4}
    unsubscribed = db.scalar(select(func.count()).where(Consent.status == ConsentStatus.UNSUBSCRIBED))
    assert unsubscribed is not None and 0 < unsubscribed < CUSTOMERS * 0.1


def test_relationships_end_after_they_start_and_match_the_timeline(
    built: list[int], db: Session, clock: FrozenClock
) -> None:
    edges = list(db.scalars(select(Relationship)))
    assert len(edges) >= CUSTOMERS * 0.9
    removed = [e for e in edges if e.removed_at is not None]
    assert 0.1 * len(edges) < len(removed) < 0.3 * len(edges)
    for edge in edges:
        assert clock.now() - timedelta(days=366) <= edge.added_at <= clock.now()
        assert (edge.removed_at is None) == (edge.removed_by is None)
        if edge.removed_at is not None:
            assert edge.added_at < edge.removed_at <= clock.now()
    events = list(db.scalars(select(CustomerEvent).where(CustomerEvent.type.like("relationship.%"))))

    def facts(type_: str) -> set[tuple[int, int, datetime | None]]:
        return {(e.properties["relationship_id"], e.customer_id, e.occurred_at) for e in events if e.type == type_}

    added, gone = facts("relationship.added"), facts("relationship.removed")
    assert added == {(e.id, e.customer_id, e.added_at) for e in edges}
    assert gone == {(e.id, e.customer_id, e.removed_at) for e in removed}
    # wecom external userids exist exactly for customers with a staff relationship
    wecom = set(db.scalars(select(Identity.customer_id).where(Identity.type == IdentityType.WECOM_EXTERNAL_USERID)))
    assert wecom == {e.customer_id for e in edges}


def test_every_customer_has_3_to_15_events_with_demo_keys(built: list[int], db: Session) -> None:
    per_customer = Counter(db.scalars(select(CustomerEvent.customer_id)))
    assert len(per_customer) == CUSTOMERS
    assert min(per_customer.values()) >= 3
    assert max(per_customer.values()) <= 15
    keys = list(db.scalars(select(CustomerEvent.idempotency_key)))
    assert all(key.startswith("demo:") for key in keys)
    assert len(set(keys)) == len(keys)


def test_demo_users_log_in_with_their_roles(built: list[int], db: Session, clock: FrozenClock) -> None:
    admin = authenticate_password(db, email=DEMO_EMAIL, password=DEMO_PASSWORD, clock=clock)
    assert admin.last_login_at == clock.now()
    with pytest.raises(Unauthenticated):
        authenticate_password(db, email=DEMO_EMAIL, password="wrong-password", clock=clock)
    roles = {
        email: (role, staff_id, store_id)
        for email, role, staff_id, store_id in db.execute(
            select(User.email, Membership.role, Membership.staff_id, Membership.store_id).join(
                Membership, Membership.user_id == User.id
            )
        )
    }
    assert {email: r[0] for email, r in roles.items()} == {u.email: u.role for u in USERS}
    manager = next(u for u in USERS if u.role is Role.STORE_MANAGER)
    staff = next(u for u in USERS if u.role is Role.STAFF)
    assert db.get(Store, roles[manager.email][2]).code == manager.store_code  # type: ignore[union-attr]
    assert db.get(Staff, roles[staff.email][1]).wecom_user_id == staff.staff_wecom_user_id  # type: ignore[union-attr]


def test_building_twice_changes_nothing(built: list[int], database: Database, db: Session, clock: FrozenClock) -> None:
    before = _counts(db)
    reports: list[int] = []
    assert build_demo(database, customers=CUSTOMERS, clock=clock, progress=reports.append) is False
    assert reports == []
    assert _counts(db) == before


def _first_five(db: Session) -> list[tuple[str | None, str | None]]:
    return [(c.name, c.phone) for c in db.scalars(select(Customer).order_by(Customer.id).limit(5))]


def test_the_same_seed_builds_the_same_people(database: Database, connection: Connection, clock: FrozenClock) -> None:
    runs = []
    for seed in (7, 7, 8):
        attempt = connection.begin_nested()
        assert build_demo(database, customers=20, clock=clock, seed=seed) is True
        with database.session() as session:
            runs.append(_first_five(session))
        attempt.rollback()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert all(name and phone for name, phone in runs[0])


def test_every_phone_prefix_draws_valid_mainland_numbers() -> None:
    rng = random.Random(1)
    for prefix in PHONE_PREFIXES:
        for _ in range(50):
            number = f"+86{prefix}{rng.randrange(10**8):08d}"
            assert normalize_phone(number) == number
