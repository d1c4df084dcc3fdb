"""The `siyu` command line on a fresh SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.db import set_database


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    set_database(None)
    yield CliRunner()
    set_database(None)
    get_settings.cache_clear()


def test_users_tokens_import_and_export(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(app, ["migrate"]).exit_code == 0
    created = cli.invoke(app, ["user", "create", "ops@brand.cn", "--password", "long-enough-1", "--role", "operator"])
    assert created.exit_code == 0, created.output
    assert "ops@brand.cn is operator in workspace default" in created.output
    promoted = cli.invoke(app, ["user", "create", "ops@brand.cn", "--role", "admin"])  # existing: no password asked
    assert promoted.exit_code == 0 and "ops@brand.cn is admin" in promoted.output
    last_admin = cli.invoke(app, ["user", "create", "ops@brand.cn", "--role", "analyst"])
    assert last_admin.exit_code == 2 and "the workspace needs at least one admin" in last_admin.output
    token = cli.invoke(app, ["token", "create", "erp", "--scope", "customers:read"])
    assert token.exit_code == 0 and token.stdout.strip().startswith("siyu_")

    source = tmp_path / "in.csv"
    source.write_text(
        "姓名,手机,标签\n陈静,13800138000,VIP\n错号,123,\n=HYPERLINK(1),13900139000,\n", encoding="utf-8-sig"
    )
    report_path = tmp_path / "report.json"
    imported = cli.invoke(app, ["import", "customers", str(source), "--report", str(report_path)])
    assert imported.exit_code == 0, imported.output
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["created"], report["rejected"], report["encoding"]) == (2, 1, "utf-8-sig")

    masked = cli.invoke(app, ["export", "customers"])
    lines = masked.stdout.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("id,name,phone,email")
    assert ",陈静,138****8000," in lines[1] and ",VIP," in lines[1]
    assert ",'=HYPERLINK(1),139****9000," in lines[2]  # a formula is written as text
    whole = cli.invoke(app, ["export", "customers", "--unmasked"])
    assert ",陈静,13800138000," in whole.stdout

    from siyu.db import get_database
    from siyu.models import AuditEntry

    with get_database().session() as session:
        actions = [(e.action, e.entity_type) for e in session.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions[:3] == [("create", "membership"), ("update", "membership"), ("create", "api_token")]


def test_bad_input_exits_2_with_a_message(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("姓名,手机\n甲,13800138000\n", encoding="utf-8")
    bad_map = cli.invoke(app, ["import", "customers", str(source), "--map", "手机"])
    assert bad_map.exit_code == 2 and "--map takes COLUMN=TARGET" in bad_map.output
    bad_target = cli.invoke(app, ["import", "customers", str(source), "--map", "手机=shoe"])
    assert bad_target.exit_code == 2 and "unknown target 'shoe'" in bad_target.output
    bad_role = cli.invoke(app, ["user", "create", "a@b.cn", "--password", "long-enough-1", "--role", "king"])
    assert bad_role.exit_code == 2 and "unknown role" in bad_role.output
    bad_ws = cli.invoke(app, ["token", "create", "x", "--workspace", "nope"])
    assert bad_ws.exit_code == 2 and "workspace 'nope' not found" in bad_ws.output
