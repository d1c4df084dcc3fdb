"""Entering the member center: a signed link opens a cookie session; bad, expired and missing
sessions get friendly zh-CN pages with a 4xx and no stack."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Customer
from tests.factories import make_workspace
from tests.loyalty.h5.conftest import link_for, sign_in
from tests.loyalty.h5.factories import make_loyalty, make_member


def test_a_link_sets_an_httponly_lax_cookie_and_lands_on_its_page(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a member and a link to their check-in page
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock, points=120)
    db.commit()
    # when the link is opened
    response = client.get(link_for(setup.workspace.id, customer.id, clock, purpose="check_in"))
    # then a session cookie scoped to /m is set and the member lands on the check-in page
    assert response.status_code == 303
    assert response.headers["location"] == "/m/check-in"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("siyu_member=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/m" in cookie
    assert f"Max-Age={30 * 24 * 3600}" in cookie
    assert response.headers["referrer-policy"] == "no-referrer"
    # and the session opens the pages
    home = client.get("/m/")
    assert home.status_code == 200
    assert 'data-testid="points-balance">120<' in home.text


def test_an_expired_link_shows_a_friendly_page_and_opens_nothing(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a link issued 31 days ago
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock)
    db.commit()
    link = link_for(setup.workspace.id, customer.id, clock)
    clock.advance(timedelta(days=31))
    # when it is opened
    response = client.get(link)
    # then a zh-CN page says so with a 410, no session is opened
    assert response.status_code == 410
    assert "<title>链接已过期</title>" in response.text
    assert "请联系品牌客服获取新的链接" in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/m/").status_code == 401


def test_a_forged_link_and_a_missing_session_get_friendly_pages(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    forged = client.get("/m/enter?t=eyJ3IjoxLCJjIjoxfQ.forged.sig")
    assert forged.status_code == 404
    assert '<h1 data-testid="message-title">链接无效</h1>' in forged.text
    assert client.get("/m/enter").status_code == 404
    missing = client.get("/m/points")
    assert missing.status_code == 401
    assert "请通过品牌发给您的会员中心链接进入" in missing.text
    assert "Traceback" not in missing.text
    # a tampered cookie is no session either
    client.cookies.set("siyu_member", "tampered", path="/m")
    assert client.get("/m/").status_code == 401


def test_english_browsers_read_english(db: Session, clock: FrozenClock, client: TestClient) -> None:
    response = client.get("/m/", headers={"accept-language": "en-US,en;q=0.9"})
    assert response.status_code == 401
    assert "<title>Please use your link</title>" in response.text


def test_a_link_of_an_erased_customer_is_invalid_and_a_merged_one_leads_to_the_survivor(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given 王芳 merged into 王芳(new), and 李雷 erased
    setup = make_loyalty(db, clock=clock)
    merged, _m1 = make_member(db, workspace=setup.workspace, clock=clock, points=10, name="王芳")
    survivor, _m2 = make_member(db, workspace=setup.workspace, clock=clock, points=300, name="王芳(新)")
    erased, _m3 = make_member(db, workspace=setup.workspace, clock=clock, name="李雷")
    db.get(Customer, merged.id).merged_into_id = survivor.id  # type: ignore[union-attr]
    db.get(Customer, erased.id).erased_at = clock.now()  # type: ignore[union-attr]
    db.commit()
    # when their old links are opened
    gone = client.get(link_for(setup.workspace.id, erased.id, clock))
    followed = client.get(link_for(setup.workspace.id, merged.id, clock))
    # then the erased one is refused, the merged one opens the survivor's center
    assert gone.status_code == 404
    assert followed.status_code == 303
    assert 'data-testid="points-balance">300<' in client.get("/m/").text


def test_a_link_names_a_customer_of_its_own_workspace_only(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a customer of brand A and a link claiming them for brand B
    setup = make_loyalty(db, clock=clock)
    other = make_workspace(db, clock=clock, name="别的品牌")
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock, points=50)
    db.commit()
    # then the link opens nothing
    assert client.get(link_for(other.id, customer.id, clock)).status_code == 404
    assert client.get("/m/").status_code == 401


def test_logout_ends_the_session(db: Session, clock: FrozenClock, client: TestClient) -> None:
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock)
    db.commit()
    sign_in(client, setup.workspace.id, customer.id, clock)
    from tests.loyalty.h5.conftest import csrf_of

    token = csrf_of(client.get("/m/check-in").text)
    assert client.post("/m/logout", data={"csrf_token": "wrong"}).status_code == 403
    response = client.post("/m/logout", data={"csrf_token": token})
    assert response.status_code == 200 and "已退出" in response.text
    assert client.get("/m/").status_code == 401


def test_the_link_lifetime_is_a_setting(
    db: Session, clock: FrozenClock, settings: Settings, database: Database
) -> None:
    # given links valid 7 days
    short = settings.model_copy(update={"member_link_days": 7})
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock)
    db.commit()
    app = create_app(short, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as phone:
        link = link_for(setup.workspace.id, customer.id, clock)
        clock.advance(timedelta(days=7))
        opened = phone.get(link)
        assert opened.status_code == 303 and f"Max-Age={7 * 24 * 3600}" in opened.headers["set-cookie"]
        clock.advance(timedelta(seconds=1))
        assert phone.get(link).status_code == 410


def test_the_cookie_is_secure_when_the_console_cookie_is(
    db: Session, clock: FrozenClock, settings: Settings, database: Database
) -> None:
    setup = make_loyalty(db, clock=clock)
    customer, _member = make_member(db, workspace=setup.workspace, clock=clock)
    db.commit()
    secure = settings.model_copy(update={"session_cookie_secure": True})
    app = create_app(secure, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as phone:
        opened = phone.get(link_for(setup.workspace.id, customer.id, clock))
        assert opened.status_code == 303 and "Secure" in opened.headers["set-cookie"]
