"""Saving the corp settings (validated, sealed, audited without secrets), the fake toggle, and the
connection test against the fake server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.config import load_config
from siyu.integrations.wecom.errors import WecomRateLimited
from siyu.integrations.wecom.fake import mount
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.settings.service import (
    SettingsIn,
    _error_field,
    check_connection,
    integration_view,
    save_settings,
    valid_aes_key,
)
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.messaging.crypto import encrypt_credentials
from siyu.models import AuditEntry, Role, WecomIntegration
from tests.factories import actor_for, make_workspace
from tests.integrations.wecom.helpers import aes_key, wecom_workspace

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SECRET = "contact-SECRET-77"


def _data(**changes: object) -> SettingsIn:
    values: dict[str, object] = {
        "corp_id": "ww1234567890",
        "agent_id": "1000002",
        "contact_secret": SECRET,
        "app_secret": "app-SECRET-88",
        "callback_token": "tok3n",
        "callback_aes_key": KEY,
    }
    return SettingsIn.model_validate(values | changes)


def _count(db: Session, model: type) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_aes_key_must_be_43_chars_of_base64() -> None:
    assert valid_aes_key(KEY) is True
    assert valid_aes_key(aes_key()) is True
    assert valid_aes_key(KEY[:42]) is False
    assert valid_aes_key(KEY[:42] + "!") is False


def test_save_seals_the_secrets_and_audits_without_them(
    db: Session, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    integration = save_settings(db, actor=actor, data=_data(), clock=clock, settings=settings)
    # the row holds the ids in clear and the secrets sealed
    assert (integration.corp_id, integration.agent_id, integration.is_fake) == ("ww1234567890", "1000002", False)
    assert integration.api_base_url == "https://qyapi.weixin.qq.com/cgi-bin/"
    assert SECRET not in (integration.secrets_encrypted or "")
    config = load_config(db, ws.id)
    assert (config.contact_secret, config.callback_token, config.callback_aes_key) == (SECRET, "tok3n", KEY)
    # a second save with blank secrets keeps them; a new token replaces only the token
    save_settings(
        db,
        actor=actor,
        data=_data(contact_secret="", app_secret=None, callback_token="n3w"),
        clock=clock,
        settings=settings,
    )
    config = load_config(db, ws.id)
    assert (config.contact_secret, config.app_secret, config.callback_token) == (SECRET, "app-SECRET-88", "n3w")
    entries = db.scalars(
        select(AuditEntry).where(AuditEntry.entity_type == "wecom_integration").order_by(AuditEntry.id)
    ).all()
    assert [e.action for e in entries] == ["create", "update"]
    assert entries[1].after is not None and entries[1].after["secrets_changed"] == ["callback_token"]
    assert entries[1].after["has_contact_secret"] is True
    assert SECRET not in json.dumps([e.after for e in entries]) + json.dumps([e.before for e in entries])
    view = integration_view(db, actor, settings)
    assert view.secrets_set == dict.fromkeys(
        ("contact_secret", "app_secret", "callback_token", "callback_aes_key"), True
    )
    assert view.callback_url == f"http://127.0.0.1:8000/integrations/wecom/callback?ws={ws.id}"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"corp_id": ""}, "corp_id"),
        ({"corp_id": "ww 12"}, "corp_id"),
        ({"agent_id": "abc"}, "agent_id"),
        ({"callback_token": "a!"}, "callback_token"),
        ({"callback_aes_key": KEY[:40] + "==="}, "callback_aes_key"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    db: Session, database: Database, clock: FrozenClock, settings: Settings, changes: dict[str, str], field: str
) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as caught:
        save_settings(db, actor=actor_for(ws), data=_data(**changes), clock=clock, settings=settings)
    assert caught.value.details == {"field": field}
    assert _count(db, WecomIntegration) == 0 and _count(db, AuditEntry) == 0


def test_only_admins_configure(db: Session, database: Database, clock: FrozenClock, settings: Settings) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(PermissionDenied):
        save_settings(db, actor=actor_for(ws, role=Role.OPERATOR), data=_data(), clock=clock, settings=settings)
    assert integration_view(db, actor_for(ws, role=Role.OPERATOR), settings).integration is None


def test_fake_toggle_needs_the_mounted_fake(
    db: Session, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as caught:
        save_settings(db, actor=actor_for(ws), data=SettingsIn(use_fake=True), clock=clock, settings=settings)
    assert caught.value.details == {"field": "use_fake"}
    assert _count(db, WecomIntegration) == 0


def test_fake_toggle_registers_the_corp_on_the_mounted_fake(
    db: Session, database: Database, clock: FrozenClock, settings: Settings, tmp_path: Path
) -> None:
    # given siyu serving the fake at /fake-wecom
    app = create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    fake = app.state.fake_wecom
    ws = make_workspace(db, clock=clock)
    # when an admin turns the fake on without typing any id or secret
    integration = save_settings(db, actor=actor_for(ws), data=SettingsIn(use_fake=True), clock=clock, settings=settings)
    # then the integration points at the mounted fake, with made-up secrets the fake corp shares
    assert integration.is_fake is True and integration.corp_id.startswith("wwfake")
    assert integration.api_base_url == "http://127.0.0.1:8000/fake-wecom/cgi-bin/"
    config = load_config(db, ws.id)
    corp = fake.corps[integration.corp_id]
    assert (corp.contact_secret, corp.app_secret, corp.callback_token, corp.callback_aes_key) == (
        config.contact_secret,
        config.app_secret,
        config.callback_token,
        config.callback_aes_key,
    )
    assert valid_aes_key(config.callback_aes_key)
    assert corp.callback_url == f"http://127.0.0.1:8000/integrations/wecom/callback?ws={ws.id}"
    # and turning it off again goes back to WeCom's address, keeping the ids
    save_settings(db, actor=actor_for(ws), data=SettingsIn(corp_id=integration.corp_id), clock=clock, settings=settings)
    assert (integration.is_fake, integration.api_base_url) == (False, "https://qyapi.weixin.qq.com/cgi-bin/")


def test_connection_test_passes_against_the_fake(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    checks = check_connection(db, actor=actor_for(setup.workspace, role=Role.OPERATOR), clock=clock)
    assert [(c.step, c.ok) for c in checks] == [
        ("contact:gettoken", True),
        ("contact:externalcontact/get_follow_user_list", True),
        ("app:gettoken", True),
        ("app:agent/get", True),
    ]
    assert setup.integration.last_checked_at == clock.now()
    assert setup.corp.calls_of("gettoken") == 2


def test_connection_test_names_the_failing_field_and_records_the_error(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.contact_secret = "rotated-in-wecom"  # the saved secret is no longer valid
    setup.corp.agent_id = "1000099"  # and the agent id is wrong
    checks = check_connection(db, actor=actor_for(setup.workspace), clock=clock)
    assert [(c.step, c.field, c.ok) for c in checks] == [
        ("contact:gettoken", "contact_secret", False),
        ("app:gettoken", "app_secret", True),
        ("app:agent/get", "agent_id", False),
    ]
    assert checks[0].message.startswith("[40001] gettoken:")
    assert setup.config.contact_secret not in checks[0].message
    db.refresh(setup.integration)
    assert setup.integration.last_error is not None and "contact:gettoken" in setup.integration.last_error
    assert setup.integration.last_error_at == clock.now() and setup.integration.last_checked_at is None
    audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "test")).one()
    assert audit.after is not None and audit.after["ok"] is False and len(audit.after["failed"]) == 2


def test_connection_test_requires_a_configuration(db: Session, database: Database, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput):
        check_connection(db, actor=actor_for(ws), clock=clock)
    with pytest.raises(PermissionDenied):
        check_connection(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)


def test_secrets_sealed_under_a_lost_key_can_be_typed_again(
    db: Session, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    # given an integration whose secrets were sealed with a key siyu no longer has
    ws = make_workspace(db, clock=clock)
    integration = save_settings(db, actor=actor_for(ws), data=_data(), clock=clock, settings=settings)
    integration.secrets_encrypted = encrypt_credentials(
        {"contact_secret": "old"}, settings.model_copy(update={"credentials_key": Fernet.generate_key().decode()})
    )
    db.flush()
    # when the admin types them again, the save works and the new ones are sealed
    save_settings(db, actor=actor_for(ws), data=_data(contact_secret="typed-again-1"), clock=clock, settings=settings)
    config = load_config(db, ws.id)
    assert (config.contact_secret, config.app_secret, config.callback_aes_key) == (
        "typed-again-1",
        "app-SECRET-88",
        KEY,
    )


def test_switching_to_the_fake_never_carries_real_secrets(
    db: Session, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    # given a real corp configured, and siyu serving the fake
    app = create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    fake = app.state.fake_wecom
    ws = make_workspace(db, clock=clock)
    save_settings(db, actor=actor_for(ws), data=_data(), clock=clock, settings=settings)
    # when the admin switches to the fake, typing only the callback token
    integration = save_settings(
        db,
        actor=actor_for(ws),
        data=SettingsIn(corp_id="wwSWITCH1", callback_token="faketok1", use_fake=True),
        clock=clock,
        settings=settings,
    )
    # then the fake corp and the saved state file hold only made-up secrets and the typed token
    config = load_config(db, ws.id)
    assert config.contact_secret != SECRET and config.app_secret != "app-SECRET-88" and config.callback_aes_key != KEY
    assert config.callback_token == "faketok1"
    mount.save_now()
    path = settings.data_dir / "fake-wecom.json"
    saved = path.read_text()
    assert SECRET not in saved and "app-SECRET-88" not in saved and KEY not in saved
    assert path.stat().st_mode & 0o777 == 0o600
    assert fake.corps["wwSWITCH1"].contact_secret == config.contact_secret
    # and switching back to the real corp drops the made-up secrets
    save_settings(
        db,
        actor=actor_for(ws),
        data=SettingsIn(corp_id="ww1234567890", app_secret="real-app-2"),
        clock=clock,
        settings=settings,
    )
    assert integration.is_fake is False
    view = integration_view(db, actor_for(ws), settings)
    assert view.secrets_set == {
        "contact_secret": False,
        "app_secret": True,
        "callback_token": False,
        "callback_aes_key": False,
    }


def test_a_fake_corp_belongs_to_one_workspace(
    db: Session, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    first, second = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    owned = save_settings(
        db, actor=actor_for(first), data=SettingsIn(corp_id="wwOWNED1", use_fake=True), clock=clock, settings=settings
    )
    callback = app.state.fake_wecom.corps["wwOWNED1"].callback_url
    with pytest.raises(InvalidInput) as caught:
        save_settings(
            db,
            actor=actor_for(second),
            data=SettingsIn(corp_id="wwOWNED1", use_fake=True),
            clock=clock,
            settings=settings,
        )
    assert caught.value.details == {"field": "corp_id"} and caught.value.status_code == 422
    assert (
        app.state.fake_wecom.corps["wwOWNED1"].callback_url
        == callback
        == (f"http://127.0.0.1:8000/integrations/wecom/callback?ws={owned.workspace_id}")
    )


def test_the_connection_test_registers_the_fake_corp_again(
    db: Session, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    # given a fake integration whose corp the fake lost (state file deleted, or a rolled-back save)
    closed = settings.model_copy(update={"fake_wecom": True, "public_url": "http://127.0.0.1:9"})
    app = create_app(closed, database=database, clock=clock, run_worker=False)
    ws = make_workspace(db, clock=clock)
    integration = save_settings(db, actor=actor_for(ws), data=SettingsIn(use_fake=True), clock=clock, settings=closed)
    del app.state.fake_wecom.corps[integration.corp_id]
    # when the connection test runs, the corp is back with the saved secrets
    check_connection(db, actor=actor_for(ws), clock=clock, settings=closed)
    corp = app.state.fake_wecom.corps[integration.corp_id]
    assert corp.contact_secret == load_config(db, ws.id).contact_secret


@pytest.mark.parametrize(("errcode", "field"), [(60020, "trusted_ip"), (45009, "rate_limit"), (40013, "corp_id")])
def test_connection_test_names_trusted_ip_and_rate_limit(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake, errcode: int, field: str
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.fail_next("externalcontact/get_follow_user_list", errcode)
    checks = check_connection(db, actor=actor_for(setup.workspace), clock=clock)
    assert [(c.step, c.field, c.ok) for c in checks][:2] == [
        ("contact:gettoken", "contact_secret", True),
        ("contact:externalcontact/get_follow_user_list", field, False),
    ]


def test_our_rate_limiter_is_named_too() -> None:
    assert _error_field(WecomRateLimited(api="gettoken", retry_after_s=3), "contact_secret") == "rate_limit"


def test_a_passing_connection_test_clears_the_old_error(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.fail_next("gettoken", 40001)
    assert not all(c.ok for c in check_connection(db, actor=actor_for(setup.workspace), clock=clock))
    db.refresh(setup.integration)
    assert setup.integration.last_error is not None
    clock.advance(timedelta(minutes=5))
    assert all(c.ok for c in check_connection(db, actor=actor_for(setup.workspace), clock=clock))
    db.flush()
    db.refresh(setup.integration)
    assert (setup.integration.last_error, setup.integration.last_error_at) == (None, None)
    assert setup.integration.last_checked_at == clock.now()
