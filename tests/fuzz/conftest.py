"""Fixtures for the fuzz tests: a committed SQLite database with one workspace and an all-scopes token,
the app over it, and the example budget (`SIYU_FUZZ_EXAMPLES`, raised by `make fuzz`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.auth.service import create_token
from siyu.config import Settings
from siyu.db import Database, make_engine, set_database
from siyu.kit.clock import FrozenClock
from siyu.migrate import upgrade
from siyu.models import Workspace
from tests.conftest import NOW
from tests.factories import (
    actor_for,
    make_channel,
    make_customer,
    make_experiment,
    make_group,
    make_staff,
    make_store,
    make_tag,
    make_token,
    make_workspace,
)


def fuzz_examples(default: int) -> int:
    """Examples per property: small in the suite, many more under `make fuzz` (SIYU_FUZZ_EXAMPLES)."""
    raw = os.environ.get("SIYU_FUZZ_EXAMPLES", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


@dataclass(frozen=True)
class FuzzWorld:
    """What the API fuzzer talks to: the app, its database, and a token holding every scope."""

    app: FastAPI
    database: Database
    workspace_id: int
    token: str
    decoy_token_id: int
    """A second token, the only one `DELETE /tokens/{token_id}` is let revoke (not the fuzzer's own)."""


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWorld]:
    """A migrated SQLite file with committed seed data. Requests commit for real, so the fuzzer
    exercises the same transaction boundary production does; the file is thrown away after."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{data_dir / 'fuzz.db'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(
        database_url=url, data_dir=data_dir, secret_key="fuzz-secret", log_json=False, broker_url=None, max_upload_mb=1
    )
    database = Database(settings, engine=engine)
    clock = FrozenClock(NOW)
    with Session(engine, expire_on_commit=False) as db:
        workspace: Workspace = make_workspace(db, clock=clock, name="模糊测试品牌")
        actor = actor_for(workspace)
        store = make_store(db, workspace=workspace)
        make_staff(db, workspace=workspace, clock=clock, store=store)
        make_tag(db, workspace=workspace, name="高价值")
        make_customer(db, actor=actor, clock=clock, name="李雷")
        make_channel(db, workspace=workspace, clock=clock)
        make_group(db, workspace=workspace, clock=clock)
        make_experiment(db, workspace=workspace, clock=clock)
        token = make_token(db, clock=clock, workspace=workspace)
        decoy = create_token(
            db, workspace_id=workspace.id, name="decoy", actor=actor, clock=clock, scopes=["customers:read"]
        )
        db.commit()
        workspace_id, decoy_id = workspace.id, decoy.token.id
    app = create_app(settings, database=database, clock=clock, run_worker=False, run_scheduler=False)
    try:
        yield FuzzWorld(app=app, database=database, workspace_id=workspace_id, token=token, decoy_token_id=decoy_id)
    finally:
        set_database(None)
        engine.dispose()
