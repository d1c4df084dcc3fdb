"""`siyu touch dispatch` on a fresh SQLite file: plans and sends a due broadcast, then goes idle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from siyu.campaigns.broadcasts.service import submit_broadcast
from siyu.campaigns.cli import is_idle, merge
from siyu.cli import app
from siyu.config import get_settings
from siyu.db import get_database, set_database
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import Broadcast, BroadcastStatus, SandboxMessage
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content, make_policy
from tests.segments.factories import make_segment


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'touch.db'}")
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    set_database(None)
    yield CliRunner()
    get_database().engine.dispose()
    set_database(None)
    get_settings.cache_clear()


def _submitted_broadcast(customers: int) -> int:
    """A workspace with `customers` customers and a submitted broadcast to all of them (no caps,
    no quiet hours: the system clock may be any time of day)."""
    database = get_database()
    upgrade(database.engine)
    with Session(database.engine, expire_on_commit=False) as db, db.begin():
        clock = system_clock
        workspace = make_workspace(db, clock=clock)
        actor = actor_for(workspace)
        ids = [make_customer(db, actor=actor, clock=clock, name=f"顾客{i}").customer.id for i in range(customers)]
        make_policy(db, workspace=workspace, clock=clock)
        segment = make_segment(db, workspace=workspace, clock=clock, members=ids)
        account = make_account(db, workspace=workspace, clock=clock)
        content = make_content(db, workspace=workspace, clock=clock)
        broadcast = make_broadcast(
            db, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[content]
        )
        submit_broadcast(db, actor=actor, broadcast_id=broadcast.id, clock=clock)
        return broadcast.id


def test_dispatch_until_idle_sends_a_due_broadcast_once(cli: CliRunner) -> None:
    # given a submitted broadcast to 5 customers
    broadcast_id = _submitted_broadcast(5)
    # when `siyu touch dispatch --until-idle --json` runs, and then once more
    first = cli.invoke(app, ["touch", "dispatch", "--until-idle", "--json"])
    second = cli.invoke(app, ["touch", "dispatch", "--json"])
    # then the first run planned and sent all 5 and closed the broadcast; the second found nothing
    assert first.exit_code == 0, first.output
    counts = json.loads(first.stdout)
    assert (counts["planned"], counts["sent"], counts["claimed"], counts["finished"]) == ({"queued": 5}, 5, 5, 1)
    assert counts["sweeps"] == 2  # the sweep that did the work, then one that found nothing
    assert set(counts["journeys"]) >= {"enrolled", "advanced"}
    again = json.loads(second.stdout)
    assert (again["planned"], again["sent"], again["sweeps"]) == ({}, 0, 1)
    with Session(get_database().engine) as db:
        assert db.scalar(select(func.count()).select_from(SandboxMessage)) == 5
        assert db.get(Broadcast, broadcast_id).status == BroadcastStatus.DONE  # type: ignore[union-attr]


def test_dispatch_prints_counts_for_people(cli: CliRunner) -> None:
    # given a submitted broadcast to 2 customers
    _submitted_broadcast(2)
    # when it runs without --json
    result = cli.invoke(app, ["touch", "dispatch"])
    # then the counts are printed one per line
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "planned: queued 2" in lines and "sent: 2" in lines and "sweeps: 1" in lines


def test_idle_means_nothing_planned_sent_requeued_closed_or_advanced() -> None:
    quiet = {"planned": {}, "claimed": 0, "requeued": 0, "finished": 0, "journeys": {"enrolled": 0, "advanced": 0}}
    assert is_idle(quiet)
    assert not is_idle(quiet | {"planned": {"suppressed": 1}})
    assert not is_idle(quiet | {"claimed": 3})
    assert not is_idle(quiet | {"journeys": {"enrolled": 0, "advanced": 2}})
    total: dict[str, object] = {}
    merge(total, {"planned": {"queued": 2}, "sent": 2})
    merge(total, {"planned": {"queued": 1, "holdout": 1}, "sent": 1})
    assert total == {"planned": {"queued": 3, "holdout": 1}, "sent": 3}


def test_rekey_reencrypts_account_and_integration_secrets(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials
    from siyu.models import ChannelAccount, WecomIntegration

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("SIYU_CREDENTIALS_KEY", old_key)
    get_settings.cache_clear()
    set_database(None)
    database = get_database()
    upgrade(database.engine)
    with Session(database.engine, expire_on_commit=False) as db, db.begin():
        workspace = make_workspace(db, clock=system_clock)
        account = make_account(db, workspace=workspace, clock=system_clock)
        account.credentials_encrypted = encrypt_credentials({"secret": "a"})
        integration = WecomIntegration(
            workspace_id=workspace.id,
            corp_id="ww1",
            secrets_encrypted=encrypt_credentials({"contact_secret": "b"}),
            created_at=system_clock.now(),
            updated_at=system_clock.now(),
        )
        db.add(integration)
    database.engine.dispose()
    monkeypatch.setenv("SIYU_CREDENTIALS_KEY", new_key)
    monkeypatch.setenv("SIYU_CREDENTIALS_OLD_KEYS", old_key)
    get_settings.cache_clear()
    set_database(None)
    result = cli.invoke(app, ["touch", "rekey"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "re-encrypted 2 secret set(s)"
    monkeypatch.delenv("SIYU_CREDENTIALS_OLD_KEYS")
    get_database().engine.dispose()
    get_settings.cache_clear()
    set_database(None)
    settings = get_database().settings
    with Session(get_database().engine) as db:
        token = db.scalar(select(ChannelAccount.credentials_encrypted).where(ChannelAccount.id == account.id))
        sealed = db.scalar(select(WecomIntegration.secrets_encrypted))
    assert decrypt_credentials(token, settings) == {"secret": "a"}
    assert decrypt_credentials(sealed, settings) == {"contact_secret": "b"}
