"""Web OAuth for the member H5, parametric QR codes, and saving the account settings."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.integrations.wechat.client import client_for
from siyu.integrations.wechat.config import load_account
from siyu.integrations.wechat.qrcodes import ensure_qr, qr_for_scan
from siyu.integrations.wechat.service import AccountIn, save_account
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.official import fail_next
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.livecodes.state import encode_state
from siyu.loyalty.h5.links import COOKIE_NAME
from siyu.models import Identity, IdentityType, LiveCodeScan, Role, WechatQrCode
from tests.factories import actor_for, make_channel, make_customer, make_experiment, make_staff, make_workspace
from tests.integrations.wechat.helpers import oa_workspace


def _login(client: TestClient, workspace_id: int, as_openid: str, to: str = "points") -> requests.Response | object:
    start = client.get("/h5/wechat/login", params={"ws": workspace_id, "to": to}, follow_redirects=False)
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert authorize.endswith("#wechat_redirect")
    answer = requests.get(authorize.split("#")[0] + f"&as_openid={as_openid}", allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    back = urlsplit(answer.headers["location"])
    assert back.path == "/h5/wechat/oauth"
    return client.get("/h5/wechat/oauth?" + back.query, follow_redirects=False)


def test_oauth_login_opens_the_member_session_of_the_openid(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server, scope="snsapi_userinfo")
    setup.state["users"]["oKNOWN1"] = {"openid": "oKNOWN1", "subscribe": 1, "nickname": "老会员", "unionid": "uK1"}
    member = make_customer(
        db, actor=actor_for(setup.workspace), clock=clock, identities=[(str(IdentityType.WECHAT_UNIONID), "uK1")]
    ).customer

    response = _login(client, setup.workspace.id, "oKNOWN1")

    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/m/points"  # type: ignore[attr-defined]
    assert COOKIE_NAME in response.cookies  # type: ignore[attr-defined]
    owner = db.scalar(
        select(Identity.customer_id).where(
            Identity.type == IdentityType.WECHAT_OPENID, Identity.value == f"{setup.config.app_id}:oKNOWN1"
        )
    )
    assert owner == member.id  # found by unionid, openid attached
    home = client.get("/m/points")
    assert home.status_code == 200


def test_oauth_is_bound_to_the_browser_that_started_it(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    # an attacker starts a login in their own browser and hands the victim the callback URL
    start = client.get("/h5/wechat/login", params={"ws": setup.workspace.id}, follow_redirects=False)
    cookie = start.headers["set-cookie"].lower()
    assert "httponly" in cookie and "path=/h5/wechat" in cookie and "max-age=600" in cookie
    authorize = start.headers["location"].split("#")[0]
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    assert len(state) <= 128 and state.isalnum()
    answer = requests.get(authorize + "&as_openid=oATTACKER", allow_redirects=False, timeout=5)
    callback = "/h5/wechat/oauth?" + urlsplit(answer.headers["location"]).query
    client.cookies.clear()  # the victim's browser never had the login cookie

    refused = client.get(callback, follow_redirects=False)

    assert refused.status_code == 400
    assert COOKIE_NAME not in refused.cookies


def test_oauth_never_redirects_outside_the_member_h5(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)

    response = _login(client, setup.workspace.id, "oEVIL1", to="https://evil.example/")

    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/m/"  # type: ignore[attr-defined]
    assert "siyu_wx_login" not in client.cookies


def test_oauth_refuses_a_forged_state_and_a_used_code(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    start = client.get("/h5/wechat/login", params={"ws": setup.workspace.id}, follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"].split("#")[0]).query)["state"][0]
    assert client.get("/h5/wechat/oauth", params={"code": "x", "state": state + "x"}).status_code == 400
    assert client.get("/h5/wechat/oauth", params={"code": "never-issued", "state": state}).status_code == 400
    assert client.get("/h5/wechat/login", params={"ws": 999_999_999}).status_code == 404


def test_qr_per_live_code_and_arm(db: Session, clock: FrozenClock, fake_server: RunningFake, database: object) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    staff = make_staff(db, workspace=setup.workspace, clock=clock)
    from tests.factories import make_live_code

    experiment = make_experiment(db, workspace=setup.workspace, clock=clock)
    code = make_live_code(
        db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": staff.id}], experiment_id=experiment.id
    )
    client = client_for(setup.config)
    plain = ensure_qr(db, setup.config, client, live_code_id=code.id, variant=None, clock=clock)
    arm = ensure_qr(db, setup.config, client, live_code_id=code.id, variant="B", clock=clock)
    again = ensure_qr(db, setup.config, client, live_code_id=code.id, variant="B", clock=clock)
    with pytest.raises(InvalidInput) as caught:
        ensure_qr(db, setup.config, client, live_code_id=code.id, variant="C", clock=clock)

    assert caught.value.details["field"] == "variant"
    assert (plain.scene, arm.scene, again.id) == (encode_state(code.id), encode_state(code.id, None, "B"), arm.id)
    assert [q["scene"] for q in setup.state["qrcodes"].values()] == [plain.scene, arm.scene]

    def scan(variant: str | None) -> LiveCodeScan:
        return LiveCodeScan(
            workspace_id=setup.workspace.id,
            live_code_id=code.id,
            variant=variant,
            visitor_id="v",
            outcome="routed",
            scanned_at=clock.now(),
        )

    assert qr_for_scan(db, scan("B")) == arm.url
    assert qr_for_scan(db, scan("C")) == plain.url
    # the code moves to a channel: its new QR wins over the older one of the old scene, whatever the ids
    channel = make_channel(db, workspace=setup.workspace, clock=clock)
    code.channel_id = channel.id
    db.flush()
    moved = ensure_qr(db, setup.config, client, live_code_id=code.id, variant=None, clock=clock)
    stale = WechatQrCode(
        workspace_id=setup.workspace.id,
        live_code_id=code.id,
        scene="s0--",
        ticket="t",
        url="http://weixin.qq.com/q/stale",
        created_at=clock.now(),
    )
    db.add(stale)
    db.flush()
    assert moved.scene == encode_state(code.id, channel.id)
    assert qr_for_scan(db, scan(None)) == moved.url
    setup.account.is_active = False
    db.flush()
    assert qr_for_scan(db, scan("B")) is None


def test_qr_errors_are_wecom_errors(
    db: Session, clock: FrozenClock, fake_server: RunningFake, database: object
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    staff = make_staff(db, workspace=setup.workspace, clock=clock)
    from tests.factories import make_live_code

    code = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": staff.id}])
    fail_next(setup.fake, setup.config.app_id, "qrcode/create", 45009)
    with pytest.raises(WecomError) as caught:
        ensure_qr(db, setup.config, client_for(setup.config), live_code_id=code.id, variant=None, clock=clock)
    assert (caught.value.code, caught.value.retryable) == (45009, True)
    assert db.scalar(select(WechatQrCode.id).where(WechatQrCode.workspace_id == setup.workspace.id)) is None


def test_the_fake_checks_scene_values(db: Session, clock: FrozenClock, fake_server: RunningFake) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    client = client_for(setup.config)

    def create(action: str, scene: dict[str, object]) -> int:
        try:
            client.call("POST", "qrcode/create", data={"action_name": action, "action_info": {"scene": scene}})
        except WecomError as exc:
            return int(exc.code or 0)
        return 0

    assert create("QR_LIMIT_STR_SCENE", {}) == 40097  # not the text "None"
    assert create("QR_LIMIT_STR_SCENE", {"scene_str": "x" * 65}) == 40097
    assert create("QR_LIMIT_SCENE", {"scene_id": 100_001}) == 40097
    assert create("QR_LIMIT_SCENE", {"scene_id": 0}) == 40097
    assert create("QR_LIMIT_SCENE", {"scene_id": 100_000}) == 0
    assert create("QR_LIMIT_STR_SCENE", {"scene_str": "s1--"}) == 0


def test_saving_settings_seals_secrets_and_names_bad_fields(
    db: Session, clock: FrozenClock, settings: Settings, database: object
) -> None:
    workspace = make_workspace(db, clock=clock)
    admin = actor_for(workspace)
    data = AccountIn(app_id="wx1234567890abcd", app_secret="s3cret", callback_token="tok123")
    account = save_account(db, actor=admin, data=data, settings=settings, clock=clock)
    assert "s3cret" not in (account.secrets_encrypted or "")
    kept = save_account(
        db,
        actor=admin,
        data=AccountIn(app_id="wx1234567890abcd", oauth_scope="snsapi_userinfo"),
        settings=settings,
        clock=clock,
    )
    config = load_account(db, workspace.id)
    assert (kept.id, config.app_secret, config.callback_token, config.oauth_scope) == (
        account.id,
        "s3cret",
        "tok123",
        "snsapi_userinfo",
    )
    for bad, field in (
        (AccountIn(app_id="nope"), "app_id"),
        (AccountIn(app_id="wx1234567890abcd", callback_aes_key="short"), "callback_aes_key"),
        (AccountIn(app_id="wx1234567890abcd", oauth_scope="all"), "oauth_scope"),
    ):
        with pytest.raises(InvalidInput) as caught:
            save_account(db, actor=admin, data=bad, settings=settings, clock=clock)
        assert caught.value.details["field"] == field
    with pytest.raises(PermissionDenied):
        save_account(db, actor=actor_for(workspace, role=Role.OPERATOR), data=data, settings=settings, clock=clock)
