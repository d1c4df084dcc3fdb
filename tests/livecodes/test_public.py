"""The public scan page `/q/{slug}`: landing, simulated add with welcome, and friendly failures."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.livecodes.service import delete_live_code
from siyu.models import CustomerTag, LiveCodeScan, Relationship, Workspace
from tests.community.groups.factories import seat
from tests.factories import make_channel, make_group, make_live_code, make_staff, make_tag

SCAN_ID = re.compile(r'name="scan_id" value="(\d+)"')


def test_scan_then_simulated_add_shows_the_personal_welcome(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a live code with a hook, a tag and a welcome message
    staff = make_staff(db, workspace=workspace, clock=clock, name="小林")
    channel = make_channel(db, workspace=workspace, clock=clock, name="包裹卡", hook="免费小样")
    tag = make_tag(db, workspace=workspace, name="包裹卡客户")
    code = make_live_code(
        db,
        workspace=workspace,
        clock=clock,
        channel_id=channel.id,
        tag_ids=[tag.id],
        routes=[{"staff_id": staff.id}],
        welcome={"text": "{{ name }}您好，我是{{ staff_name }}"},
    )
    db.commit()
    # when a phone scans the code
    page = client.get(f"/q/{code.slug}", headers={"user-agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0"})
    # then it sees the staff member and the hook, and gets a visitor cookie
    assert page.status_code == 200
    assert 'data-testid="staff-name">小林<' in page.text and 'data-testid="hook">免费小样<' in page.text
    assert "siyu_vid" in page.cookies
    scan_id = int(SCAN_ID.search(page.text).group(1))  # type: ignore[union-attr]
    # when it completes the simulated add
    added = client.post(f"/q/{code.slug}/add", data={"scan_id": str(scan_id), "name": "王小姐"})
    # then the welcome message is personal, the add attributed and tagged
    assert added.status_code == 200
    assert 'data-testid="welcome">王小姐您好，我是小林<' in added.text
    scan = db.get(LiveCodeScan, scan_id)
    assert scan is not None
    db.refresh(scan)
    assert scan.user_agent == "Mozilla/5.0 (iPhone) MicroMessenger/8.0" and scan.ip_hash is not None
    edge = db.scalar(select(Relationship).where(Relationship.customer_id == scan.customer_id))
    assert edge is not None and (edge.channel_id, edge.live_code_id, edge.staff_id) == (channel.id, code.id, staff.id)
    assert db.scalar(select(CustomerTag.tag_id).where(CustomerTag.customer_id == scan.customer_id)) == tag.id
    # and a second tap on the button changes nothing
    again = client.post(f"/q/{code.slug}/add", data={"scan_id": str(scan_id), "name": "王小姐"})
    assert 'data-testid="added-title">已经是好友啦<' in again.text


def test_someone_elses_scan_cannot_be_claimed(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    code = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}])
    db.commit()
    page = client.get(f"/q/{code.slug}")
    scan_id = SCAN_ID.search(page.text).group(1)  # type: ignore[union-attr]
    client.cookies.clear()
    stolen = client.post(f"/q/{code.slug}/add", data={"scan_id": scan_id})
    assert stolen.status_code == 409 and "请重新扫码" in stolen.text
    assert db.scalar(select(Relationship.id)) is None


def test_bad_input_on_the_add_form_is_a_friendly_page(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    code = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}])
    db.commit()
    scan_id = SCAN_ID.search(client.get(f"/q/{code.slug}").text).group(1)  # type: ignore[union-attr]
    assert client.get(f"/q/{code.slug}?store=²").status_code == 200  # a Unicode digit is no store id
    assert client.post(f"/q/{code.slug}/add", data={"scan_id": scan_id + "²"}).status_code == 409
    assert client.post(f"/q/{code.slug}/add", data={"scan_id": "abc"}).status_code == 409
    assert client.post(f"/q/{code.slug}/add", data={"scan_id": "9" * 30}).status_code == 422
    assert client.post(f"/q/{code.slug}/add", data={}).status_code == 422


def test_unknown_malformed_deleted_and_expired_codes_answer_friendly_pages(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    deleted = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}])
    expired = make_live_code(
        db,
        workspace=workspace,
        clock=clock,
        routes=[{"staff_id": staff.id}],
        expires_at=clock.now() - timedelta(seconds=1),
    )
    delete_live_code(db, actor=Actor.system(workspace.id), code_id=deleted.id, clock=clock)
    db.commit()
    for path, status, title in [
        ("/q/zzzzzzzz", 404, "二维码无效"),
        ("/q/%00%27;--", 404, "二维码无效"),
        ("/q/" + "a" * 300, 404, "二维码无效"),
        (f"/q/{deleted.slug}", 410, "活动已结束"),
        (f"/q/{expired.slug}", 410, "活动已结束"),
        (f"/q/{deleted.slug}?store=-1", 410, "活动已结束"),
    ]:
        response = client.get(path)
        assert (response.status_code, f'data-testid="message-title">{title}<' in response.text) == (status, True), path
    english = client.get("/q/zzzzzzzz", headers={"accept-language": "en-US,en;q=0.9"})
    assert 'data-testid="message-title">Unknown QR code<' in english.text


def test_group_code_landing_and_join(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    group = make_group(db, workspace=workspace, clock=clock, name="福利1群", limit=3)
    seat(db, group=group, clock=clock, count=2)  # one seat left
    spare = make_group(db, workspace=workspace, clock=clock, name="福利2群")
    code = make_live_code(
        db, workspace=workspace, clock=clock, kind="group", routes=[{"group_id": group.id}, {"group_id": spare.id}]
    )
    db.commit()
    first = client.get(f"/q/{code.slug}")
    assert 'data-testid="group-name">福利1群<' in first.text and "data:image/svg+xml" in first.text
    joined = client.post(f"/q/{code.slug}/join", data={"scan_id": SCAN_ID.search(first.text).group(1)})  # type: ignore[union-attr]
    assert 'data-testid="added-title">已加入群聊<' in joined.text
    client.cookies.clear()
    assert 'data-testid="group-name">福利2群<' in client.get(f"/q/{code.slug}").text


def test_store_code_asks_for_the_store_first(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    from tests.factories import make_store

    store = make_store(db, workspace=workspace, name="徐汇店")
    staff = make_staff(db, workspace=workspace, clock=clock, name="徐汇导购", store=store)
    code = make_live_code(db, workspace=workspace, clock=clock, kind="store", routes=[{"staff_id": staff.id}])
    db.commit()
    picker = client.get(f"/q/{code.slug}")
    assert f'href="/q/{code.slug}?store={store.id}">徐汇店<' in picker.text
    assert db.scalar(select(LiveCodeScan.id)) is None
    landing = client.get(f"/q/{code.slug}?store={store.id}")
    assert 'data-testid="staff-name">徐汇导购<' in landing.text


def test_the_landing_page_shows_the_routes_contact_qr(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock, name="小林")
    qr = "https://wework.qpic.cn/wwpic/contact_way_qr.png"
    code = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id, "contact_qr_url": qr}])
    db.commit()
    page = client.get(f"/q/{code.slug}")
    assert f'<img src="{qr}" alt="小林" data-testid="staff-qr">' in page.text


def test_a_typed_phone_never_reaches_a_real_customer(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a real customer with a phone, and a code whose welcome says the customer's name
    from siyu.auth.permissions import Actor
    from siyu.models import Customer
    from tests.factories import make_customer

    real = make_customer(db, actor=Actor.system(workspace.id), clock=clock, phone="13912345678", name="张秘密")
    staff = make_staff(db, workspace=workspace, clock=clock)
    code = make_live_code(
        db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}], welcome={"text": "{{ name }}您好"}
    )
    db.commit()
    # when an anonymous visitor adds and types that phone
    scan_id = SCAN_ID.search(client.get(f"/q/{code.slug}").text).group(1)  # type: ignore[union-attr]
    added = client.post(f"/q/{code.slug}/add", data={"scan_id": scan_id, "phone": "13912345678"})
    # then the real customer is untouched and never shown
    assert "张秘密" not in added.text and 'data-testid="welcome">亲您好<' in added.text
    db.refresh(real.customer)
    assert real.customer.merged_into_id is None
    assert db.scalar(select(Relationship.id).where(Relationship.customer_id == real.customer.id)) is None
    assert db.scalar(select(Customer.id).where(Customer.merged_into_id == real.customer.id)) is None
