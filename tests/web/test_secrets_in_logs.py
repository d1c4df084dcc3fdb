"""Secrets never reach a log line: passwords, API tokens, WeCom secrets, SMS credentials.

Every record logged at DEBUG while real flows run is kept raw — before any masking could hide a
leak — and searched for the secret strings.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.logging import JsonFormatter, PiiFilter
from tests.factories import make_user, make_workspace
from tests.web.conftest import csrf_of

PASSWORD = "Tr0ub4dor-and-3-horses"
WRONG_PASSWORD = "guessed-Passw0rd-77"
CONTACT_SECRET = "wecom-contact-SECRET-5c1e"
APP_SECRET = "wecom-app-SECRET-93ab"
CALLBACK_TOKEN = "cbTOKEN7734"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SMS_KEY_SECRET = "aliyun-KEY-secret-0f0f0f"
FORGED_TOKEN = "siyu_forgedTOKENforgedTOKEN12345"
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RawRecords(logging.Handler):
    """Keeps every record as it was logged, before any filter could mask it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.masked: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}
        exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.lines.append(f"{record.name} {record.getMessage()} {extras!r} {exc}")


@pytest.fixture(autouse=True)
def raw_logs() -> Iterator[RawRecords]:
    """Every logger at DEBUG, recorded raw, for the test."""
    handler = RawRecords()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def client(
    settings: Settings, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def test_no_secret_is_logged_by_sign_in_tokens_wecom_and_sms_settings(
    client: TestClient, db: Session, clock: FrozenClock, raw_logs: RawRecords
) -> None:
    workspace = make_workspace(db, clock=clock)
    make_user(db, clock=clock, workspace=workspace, email="owner@example.com", password=PASSWORD)
    db.commit()
    # sign-in: a wrong password, then the right one
    form = {"email": "owner@example.com", "csrf_token": csrf_of(client.get("/login").text)}
    assert client.post("/login", data=form | {"password": WRONG_PASSWORD}).status_code == 401
    assert client.post("/login", data=form | {"password": PASSWORD}).status_code == 303
    csrf = csrf_of(client.get("/").text)
    # an API token issued in the console, used, and a forged one tried
    issued = client.post(
        "/settings/tokens", data={"name": "erp", "csrf_token": csrf} | {"scopes": ["touch:read", "touch:channels"]}
    )
    assert issued.status_code == 201, issued.text
    match = re.search(r'id="token-secret"[^>]*>(siyu_[^<]+)<', issued.text)
    assert match
    api_token = match.group(1)
    assert client.get("/api/v1/channel-accounts", headers={"authorization": f"Bearer {api_token}"}).status_code == 200
    assert (
        client.get("/api/v1/channel-accounts", headers={"authorization": f"Bearer {FORGED_TOKEN}"}).status_code == 401
    )
    # WeCom secrets saved in the console
    wecom = {"corp_id": "wwLOG01", "agent_id": "1000002", "contact_secret": CONTACT_SECRET, "app_secret": APP_SECRET}
    wecom |= {"callback_token": CALLBACK_TOKEN, "callback_aes_key": AES_KEY, "csrf_token": csrf}
    assert client.post("/integrations/wecom", data=wecom).status_code == 303
    # SMS credentials saved through the API
    sms = {"name": "阿里云短信", "kind": "sms_aliyun", "settings": {"sign_name": "花间集"}}
    sms["credentials"] = {"access_key_id": "LTAI-id", "access_key_secret": SMS_KEY_SECRET}
    created = client.post("/api/v1/channel-accounts", headers={"authorization": f"Bearer {api_token}"}, json=sms)
    assert created.status_code == 201, created.text
    # then the flows were logged but no line holds a secret
    assert sum(" request " in line and "'path': '/login'" in line for line in raw_logs.lines) == 3
    assert {line.split()[0] for line in raw_logs.lines} >= {"siyu.http"}
    secrets = (PASSWORD, WRONG_PASSWORD, api_token, FORGED_TOKEN, CONTACT_SECRET, APP_SECRET, AES_KEY, SMS_KEY_SECRET)
    leaks = {secret: [line[:300] for line in raw_logs.lines if secret in line] for secret in secrets}
    assert leaks == {secret: [] for secret in secrets}
    assert [line[:300] for line in raw_logs.lines if CALLBACK_TOKEN in line] == []


def test_a_secret_that_reaches_a_log_call_anyway_is_masked_on_the_way_out() -> None:
    # the last line of defence, for code that has not been written yet
    record = logging.LogRecord(
        "siyu.integrations",
        logging.WARNING,
        __file__,
        1,
        "token refresh failed: %s",
        (f"POST /cgi-bin/gettoken?corpid=ww1&corpsecret={CONTACT_SECRET} password={PASSWORD}",),
        None,
    )
    record.headers = {"Authorization": f"Bearer {FORGED_TOKEN}"}
    PiiFilter().filter(record)
    line = JsonFormatter().format(record)
    assert (
        json.loads(line)["message"]
        == "token refresh failed: POST /cgi-bin/gettoken?corpid=ww1&corpsecret=*** password=***"
    )
    assert json.loads(line)["headers"] == {"Authorization": "***"}
