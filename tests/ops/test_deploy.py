"""The deployment files parse, name only real settings, and keep the shutdown grace consistent."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from sqlalchemy import Engine
from typer.testing import CliRunner
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from siyu.config import Settings
from siyu.db import Database
from siyu.migrate import MIGRATIONS_DIR

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
FILES = sorted(
    p for p in [*DEPLOY.glob("*"), *(DEPLOY / "systemd").glob("*"), *(DEPLOY / "k8s").glob("*")] if p.is_file()
)
SETTING = re.compile(r"\bSIYU_[A-Z0-9_]+\b")
GRACE = Settings.model_fields["shutdown_grace_s"].default


def _k8s() -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if "metadata" in d}


def test_every_siyu_variable_named_in_deploy_files_and_docs_is_a_setting() -> None:
    known = {f"SIYU_{name.upper()}" for name in Settings.model_fields}
    named = {
        (path.relative_to(ROOT).as_posix(), variable)
        for path in [*FILES, ROOT / "docs" / "operations.md"]
        for variable in SETTING.findall(path.read_text())
    }
    # SIYU_TEST_* and SIYU_SOAK_* configure the test and soak harnesses, not siyu
    harness = ("SIYU_TEST_", "SIYU_SOAK_")
    assert {(p, v) for p, v in named if v not in known and not v.startswith(harness)} == set()
    assert len(named) > 20


def test_the_operations_guide_lists_every_setting() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    rows = set(re.findall(r"^\| `(SIYU_[A-Z0-9_]+)` \|", guide, flags=re.M))
    assert rows == {f"SIYU_{name.upper()}" for name in Settings.model_fields}


def test_compose_runs_the_production_topology_with_readiness_checks() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    commands = sorted(" ".join(s["command"]) for s in services.values() if s.get("image") == "siyu:latest")
    assert commands == ["siyu migrate"] + ["siyu scheduler"] * 2 + ["siyu serve --no-migrate"] * 2 + ["siyu worker"] * 3
    for name, service in services.items():
        if name.startswith(("api", "worker", "scheduler")):
            assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        if name.startswith("worker"):
            assert int(service["stop_grace_period"].rstrip("s")) > GRACE


def test_kubernetes_manifests_probe_drain_and_elect() -> None:
    objects = _k8s()
    api = objects[("Deployment", "siyu-api")]["spec"]
    worker = objects[("Deployment", "siyu-worker")]["spec"]
    scheduler = objects[("Deployment", "siyu-scheduler")]["spec"]
    config = objects[("ConfigMap", "siyu-config")]["data"]
    container = api["template"]["spec"]["containers"][0]
    assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == (
        "/healthz",
        "/readyz",
    )
    assert container["args"] == ["siyu", "serve", "--no-migrate"]
    assert objects[("PodDisruptionBudget", "siyu-api")]["spec"]["minAvailable"] == 1
    assert worker["template"]["spec"]["terminationGracePeriodSeconds"] > int(config["SIYU_SHUTDOWN_GRACE_S"])
    assert (scheduler["replicas"], scheduler["template"]["spec"]["containers"][0]["args"]) == (
        2,
        ["siyu", "scheduler"],
    )
    assert objects[("Job", "siyu-migrate")]["spec"]["template"]["spec"]["containers"][0]["args"] == ["siyu", "migrate"]


def test_systemd_units_use_the_env_file_and_outlast_the_grace() -> None:
    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    assert sorted(units) == [
        "siyu-api@.service",
        "siyu-migrate.service",
        "siyu-scheduler.service",
        "siyu-worker@.service",
    ]
    for text in units.values():
        assert "EnvironmentFile=/etc/siyu/siyu.env" in text
    stop = re.search(r"^TimeoutStopSec=(\d+)$", units["siyu-worker@.service"], flags=re.M)
    assert stop is not None and int(stop.group(1)) > GRACE


def test_the_image_runs_siyu_from_app_beside_its_migrations() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    # siyu.migrate finds the scripts next to the package: the image must import siyu from /app
    assert MIGRATIONS_DIR == ROOT / "migrations"
    assert re.search(r"^WORKDIR /app$", dockerfile, flags=re.M)
    assert {"COPY siyu ./siyu", "COPY migrations ./migrations"} <= set(dockerfile.splitlines())
    assert re.search(r"^\s+PYTHONPATH=/app$", dockerfile, flags=re.M)
    assert re.search(r"^RUN pip install --no-compile -e \. ", dockerfile, flags=re.M)


def test_forwarded_headers_are_trusted_only_from_named_proxies_and_metrics_need_a_token() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    objects = _k8s()
    config = objects[("ConfigMap", "siyu-config")]["data"]
    secret = objects[("Secret", "siyu-secrets")]["stringData"]
    environment = compose["x-siyu"]["environment"]
    env_file = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "siyu.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    trusted = [config["SIYU_TRUSTED_PROXIES"], environment["SIYU_TRUSTED_PROXIES"], env_file["SIYU_TRUSTED_PROXIES"]]
    assert trusted == ["10.244.0.0/16", trusted[1], "10.0.0.10"]
    assert trusted[1].startswith("${SIYU_TRUSTED_PROXIES:?") and "*" not in trusted[1]
    assert ("SIYU_METRICS_TOKEN" in secret, "SIYU_METRICS_TOKEN" in config) == (True, False)
    assert environment["SIYU_METRICS_TOKEN"].startswith("${SIYU_METRICS_TOKEN:?")
    assert env_file["SIYU_METRICS_TOKEN"]


def test_migrate_without_its_scripts_fails_with_a_clear_error(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import siyu.cli
    import siyu.migrate

    # siyu installed as a plain wheel: no migrations/ beside the package
    monkeypatch.setattr(siyu.migrate, "MIGRATIONS_DIR", tmp_path / "site-packages" / "migrations")
    database = Database(Settings(database_url="sqlite://", data_dir=tmp_path, log_json=False), engine=engine)
    monkeypatch.setattr(siyu.cli, "get_database", lambda: database)
    result = CliRunner().invoke(siyu.cli.app, ["migrate"])
    expected = (
        f"error: migration scripts not found at {tmp_path / 'site-packages' / 'migrations'}: install siyu from "
        "its source tree with `pip install -e .` (or put the source tree first on PYTHONPATH), not as a plain wheel"
    )
    # compared without white space: the console wraps long lines anywhere, even inside the path
    assert (result.exit_code, "".join(result.output.split())) == (2, "".join(expected.split()))


def test_siyu_serve_hands_the_trusted_proxies_to_uvicorn_which_cannot_be_spoofed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import siyu.app
    import siyu.cli

    captured: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: captured.update(options))
    monkeypatch.setattr(siyu.app, "create_app", lambda settings: None)
    monkeypatch.setattr(siyu.cli, "configure_logging", lambda *args, **kwargs: None)
    settings = Settings(database_url="sqlite://", trusted_proxies="10.0.0.0/8", log_json=False)
    monkeypatch.setattr(siyu.cli, "get_settings", lambda: settings)
    siyu.cli._serve("127.0.0.1", 8000)
    assert (captured["proxy_headers"], captured["forwarded_allow_ips"]) == (True, "10.0.0.0/8")
    trusted = captured["forwarded_allow_ips"]
    monkeypatch.setattr(siyu.cli, "get_settings", lambda: settings.model_copy(update={"trusted_proxies": ""}))
    siyu.cli._serve("127.0.0.1", 8000)
    assert captured["forwarded_allow_ips"] == "127.0.0.1"

    def client(peer: str, forwarded: str) -> str:
        seen: list[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["client"][0])

        middleware = ProxyHeadersMiddleware(app, trusted_hosts=trusted)
        scope = {"type": "http", "client": (peer, 1234), "headers": [(b"x-forwarded-for", forwarded.encode())]}
        asyncio.run(middleware(scope, None, None))  # type: ignore[arg-type]
        return seen[0]

    # a client claiming a private address directly, or through the proxy, stays itself
    assert client("198.51.100.7", "10.0.0.1") == "198.51.100.7"
    assert client("10.0.0.5", "10.0.0.1, 198.51.100.7") == "198.51.100.7"
    assert client("10.0.0.5", "203.0.113.9") == "203.0.113.9"


def _unit_ports(unit: str, instance: str) -> dict[str, int]:
    """The --port/--health-port/--metrics-port flags of a unit's ExecStart for one instance."""
    exec_start = re.search(r"^ExecStart=(.*)$", unit, flags=re.M)
    assert exec_start is not None
    flags = re.findall(r"--(port|health-port|metrics-port) (\S+)", exec_start.group(1).replace("%i", instance))
    return {name: int(value) for name, value in flags}


def test_systemd_units_on_one_machine_never_share_a_port_and_prometheus_scrapes_them() -> None:
    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    api = [_unit_ports(units["siyu-api@.service"], port)["port"] for port in ("8001", "8002")]
    workers = {n: _unit_ports(units["siyu-worker@.service"], str(n)) for n in range(1, 10)}
    scheduler = _unit_ports(units["siyu-scheduler.service"], "")
    processes = 10  # a worker instance may run up to 10 processes: metrics port + 0..9
    ports = [
        *api,
        *(ports["health-port"] for ports in workers.values()),
        *(ports["metrics-port"] + p for ports in workers.values() for p in range(processes)),
        scheduler["health-port"],
        scheduler["metrics-port"],
    ]
    assert len(ports) == len(set(ports)) and max(ports) < 65536
    assert (api, workers[1], workers[2]["metrics-port"]) == (
        [8001, 8002],
        {"health-port": 9101, "metrics-port": 9210},
        9220,
    )
    # the env file all units read sets no port (a flag would win anyway, but it would mislead)
    assert not re.search(
        r"^SIYU_(PORT|HEALTH_PORT|METRICS_PORT)=", (DEPLOY / "systemd" / "siyu.env.example").read_text(), flags=re.M
    )
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        job["job_name"]: {int(t.rsplit(":", 1)[1]) for c in job["static_configs"] for t in c["targets"]}
        for job in prometheus["scrape_configs"]
    }
    assert scraped == {
        "siyu-api": set(api),
        "siyu-worker": {workers[1]["metrics-port"], workers[2]["metrics-port"]},
        "siyu-scheduler": {scheduler["metrics-port"]},
    }


def settings_table() -> str:
    """The configuration table of docs/operations.md, from `Settings`."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None:
            shown = "unset"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, Path):
            shown = f"`{default.as_posix()}`"
        elif default == "":
            shown = "empty"
        else:
            shown = f"`{default}`"
        lines.append(f"| `SIYU_{name.upper()}` | {shown} | {(field.description or '').replace('|', '/')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
