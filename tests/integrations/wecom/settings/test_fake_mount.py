"""The fake mounted at `/fake-wecom` for the demo: state loaded from and saved to
`<data_dir>/fake-wecom.json`, its console page listing corps and simulations."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.fake import app as fake_app
from siyu.integrations.wecom.fake import mount
from siyu.integrations.wecom.fake.state import FakeWecom
from siyu.kit.clock import FrozenClock


@fake_app.sim("settings-test/rename")
def _rename(fake: FakeWecom, body: dict[str, Any]) -> dict[str, Any]:
    with fake.lock:
        corp = fake.corp(str(body["corp_id"]))
        corp.users[str(body["userid"])]["name"] = str(body["name"])
    return {"ok": True}


def test_state_is_loaded_served_and_saved(settings: Settings, database: Database, clock: FrozenClock) -> None:
    # given a saved fake with one corp and one member
    path = settings.data_dir / "fake-wecom.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = FakeWecom()
    corp = saved.add_corp("wwMOUNT1", contact_secret="s3cret", callback_url="http://127.0.0.1:8000/cb")
    corp.users["mia"] = {"userid": "mia", "name": "米娅", "department": [1], "status": 1}
    saved.save(path)
    # when siyu starts with the fake turned on
    app = create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    with TestClient(app) as client:
        # then the fake answers at /fake-wecom with the saved corp
        token = client.get("/fake-wecom/cgi-bin/gettoken", params={"corpid": "wwMOUNT1", "corpsecret": "s3cret"})
        assert token.json()["errcode"] == 0 and token.json()["access_token"].startswith("fake-")
        page = client.get("/fake-wecom/")
        assert page.status_code == 200
        assert "wwMOUNT1" in page.text and "米娅 (mia)" in page.text
        assert 'action="/fake-wecom/sim/settings-test/rename"' in page.text
        # and a simulation changes it, saved to the file
        done = client.post(
            "/fake-wecom/sim/settings-test/rename", json={"corp_id": "wwMOUNT1", "userid": "mia", "name": "米亚"}
        )
        assert done.json() == {"ok": True}
        assert mount._mounted is not None and mount._mounted.dirty.is_set()
        mount.save_now()
    data = json.loads(path.read_text())
    assert data["corps"]["wwMOUNT1"]["users"]["mia"]["name"] == "米亚"
    assert "tokens" not in data["corps"]["wwMOUNT1"]
    assert mount.mounted_fake() is app.state.fake_wecom


def test_not_mounted_unless_asked(settings: Settings, database: Database, clock: FrozenClock) -> None:
    app = create_app(settings, database=database, clock=clock, run_worker=False)
    with TestClient(app) as client:
        assert client.get("/fake-wecom/cgi-bin/gettoken").status_code == 404
    assert mount.mounted_fake() is None


def test_a_broken_state_file_is_kept_aside_and_the_fake_starts_empty(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    path = settings.data_dir / "fake-wecom.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    app = create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    assert app.state.fake_wecom.corps == {}
    assert (settings.data_dir / "fake-wecom.json.broken").read_text() == "{not json"
    assert not path.exists()


def test_the_background_saver_writes_changes_and_shutdown_saves(
    settings: Settings, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mount, "SAVE_EVERY_S", 0.05)
    path = settings.data_dir / "fake-wecom.json"
    app = create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    app.state.fake_wecom.add_corp("wwSAVER1", contact_secret="s").users["mia"] = {"userid": "mia", "name": "a"}
    with TestClient(app) as client:
        # a simulation marks the state changed; the saver writes it without being asked
        client.post("/fake-wecom/sim/settings-test/rename", json={"corp_id": "wwSAVER1", "userid": "mia", "name": "b"})
        deadline = time.monotonic() + 5
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert json.loads(path.read_text())["corps"]["wwSAVER1"]["users"]["mia"]["name"] == "b"
        assert path.stat().st_mode & 0o777 == 0o600
        # a change right before shutdown is saved by the shutdown itself
        mount._mounted.stop.set()  # type: ignore[union-attr]
        time.sleep(0.1)
        client.post("/fake-wecom/sim/settings-test/rename", json={"corp_id": "wwSAVER1", "userid": "mia", "name": "c"})
    assert json.loads(path.read_text())["corps"]["wwSAVER1"]["users"]["mia"]["name"] == "c"


def test_a_failed_save_stays_pending_and_the_saver_survives(
    settings: Settings, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    persisted = mount._mounted
    assert persisted is not None
    broken = {"on": True}

    def flaky(fake: FakeWecom, path: Path) -> None:
        if broken["on"]:
            raise RuntimeError("disk says no")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")

    monkeypatch.setattr(mount, "save_private", flaky)
    monkeypatch.setattr(mount, "SAVE_EVERY_S", 0.02)
    persisted.stop.set()  # the app's saver: replaced by one this test drives
    persisted.stop = threading.Event()
    saver = threading.Thread(target=persisted.run, daemon=True)
    saver.start()
    persisted.dirty.set()
    time.sleep(0.15)
    assert saver.is_alive() and persisted.dirty.is_set() and not persisted.path.exists()
    broken["on"] = False
    deadline = time.monotonic() + 5
    while persisted.dirty.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    persisted.stop.set()
    assert persisted.path.read_text() == "{}"


def test_a_later_app_without_the_fake_forgets_it(settings: Settings, database: Database, clock: FrozenClock) -> None:
    create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    assert mount.mounted_fake() is not None
    create_app(settings, database=database, clock=clock, run_worker=False)
    assert mount.mounted_fake() is None


def test_a_warning_when_the_unauthenticated_fake_is_public(
    settings: Settings, database: Database, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=mount.__name__):
        create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
        assert not [r for r in caplog.records if "no authentication" in r.getMessage()]
        public = settings.model_copy(update={"fake_wecom": True, "public_url": "https://crm.example.com"})
        create_app(public, database=database, clock=clock, run_worker=False)
    assert [r.levelname for r in caplog.records if "no authentication" in r.getMessage()] == ["WARNING"]


def test_access_tokens_stay_out_of_the_access_log(settings: Settings, database: Database, clock: FrozenClock) -> None:
    create_app(settings.model_copy(update={"fake_wecom": True}), database=database, clock=clock, run_worker=False)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s"',
        ("127.0.0.1", "GET", "/x?access_token=fake-abc&y=1"),
        None,
    )
    for log_filter in logging.getLogger("uvicorn.access").filters:
        assert not isinstance(log_filter, logging.Filter) or log_filter.filter(record)
    assert record.getMessage() == '127.0.0.1 - "GET /x?access_token=***&y=1"'
