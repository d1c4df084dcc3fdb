"""Settings, read from `SIYU_*` environment variables (and an optional `.env` file)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, PrivateAttr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Run-time configuration. Every field maps to `SIYU_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore")

    database_url: str = Field(default="sqlite:///./siyu.db", description="SQLAlchemy URL of the database.")
    timezone: str = Field(default="Asia/Shanghai", description="Default brand time zone.")
    secret_key: str | None = Field(
        default=None,
        description="Signs console session cookies. Unset: a random key is made once and kept in "
        "<data_dir>/secret_key (set it explicitly when several replicas serve the console).",
    )
    broker_url: str | None = Field(default=None, description="Redis URL for Dramatiq; unset runs jobs in-process.")
    data_dir: Path = Field(default=Path("./data"), description="Uploaded files and exports.")
    max_upload_mb: int = Field(default=50, description="Largest accepted upload, in MiB.")
    log_level: str = Field(default="INFO", description="Log level: DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(default=True, description="Structured JSON logs (one object a line).")
    default_locale: str = Field(default="zh_CN", description="Console language when the user chose none.")
    phone_region: str = Field(default="CN", description="Region assumed for phone numbers without +code.")
    session_cookie_secure: bool = Field(default=False, description="Send the console cookie over HTTPS only.")
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, description="How long a SQLite writer waits for the database lock, in milliseconds."
    )
    worker_threads: int = Field(
        default=2, ge=1, description="Job threads per worker process (`siyu worker`, and in-process in embedded mode)."
    )
    simulated_adds: bool = Field(
        default=True,
        description="Live code landing pages offer a simulated add / group join, so the whole flow works "
        "without WeCom. Turn off once the WeCom callback reports real adds.",
    )

    segment_timeout_s: int = Field(
        default=30, description="Longest a segment query may run on PostgreSQL (statement timeout), in seconds."
    )
    segment_refresh_minutes: int = Field(
        default=60, description="How often the scheduler recomputes tracked segments (who entered, who left)."
    )
    credentials_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts channel credentials at rest. Unset: derived from the secret key.",
    )
    credentials_old_keys: str | None = Field(
        default=None, description="Earlier credential keys, comma-separated, still accepted for decryption."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The console's public address; short links and unsubscribe links in messages start with it.",
    )
    send_batch_size: int = Field(default=500, description="Deliveries a sender claims at a time.")
    member_link_days: int = Field(
        default=30,
        ge=1,
        description="How long a member's signed H5 link, and the session it opens, stays valid, in days.",
    )
    send_max_attempts: int = Field(
        default=5, description="Attempts before a delivery failing with timeouts or 5xx is marked failed."
    )
    fake_wecom: bool = Field(
        default=False,
        description="Serve siyu's fake WeCom and official-account server at /fake-wecom (the demo turns it on), "
        "so the whole WeCom flow can be tried without a real corp.",
    )
    host: str = Field(default="127.0.0.1", description="Address `siyu serve` listens on (0.0.0.0 in containers).")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `siyu serve` listens on.")
    shutdown_grace_s: int = Field(
        default=25,
        ge=0,
        description="On SIGTERM, seconds `siyu serve` lets in-flight requests finish and `siyu worker` lets "
        "running jobs finish; jobs still running then are put back on the queue for another worker.",
    )
    worker_processes: int = Field(default=1, ge=1, description="Worker processes `siyu worker` starts.")
    scheduler_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between the scheduler leader's sweeps for due periodic tasks."
    )
    scheduler_standby_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between a stand-by scheduler's attempts to become leader (bounds fail-over time).",
    )
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port on which `siyu worker` and `siyu scheduler` answer /healthz and /readyz over HTTP "
        "(for Kubernetes probes); unset or 0: no health server.",
    )
    health_host: str = Field(default="0.0.0.0", description="Address the worker/scheduler health server binds.")
    login_attempts_per_ip: int = Field(
        default=30, ge=0, description="Sign-in form posts accepted from one client IP a minute; 0: no limit."
    )
    login_attempts_per_account: int = Field(
        default=10, ge=0, description="Sign-in attempts accepted for one e-mail address a minute; 0: no limit."
    )
    public_requests_per_ip: int = Field(
        default=300,
        ge=0,
        description="Requests to the public pages (live-code scans, short links, referral pages, unsubscribe, "
        "member H5) accepted from one client IP a minute; 0: no limit. Mobile carriers put many phones "
        "behind one address, so keep it well above what one person clicks.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IPs or CIDR ranges of the reverse proxies in front of siyu (never *). Only "
        "from them are X-Forwarded-For/-Proto believed, read right to left up to the first hop that is not a "
        "proxy: the client address for rate limits and the /metrics network check, and https links. "
        "Empty: 127.0.0.1 only.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="When set, GET /metrics requires `Authorization: Bearer <token>`; unset, /metrics answers "
        "only clients on loopback or private networks.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port on which `siyu worker` and `siyu scheduler` serve their Prometheus metrics "
        "(process N of `siyu worker` uses port + N); unset or 0: none.",
    )
    metrics_cache_s: float = Field(
        default=10.0, ge=0, description="Seconds the database gauges of /metrics are cached between scrapes."
    )
    retention_months: int = Field(
        default=0,
        ge=0,
        description="Events older than this many whole months are archived to Parquet, then removed "
        "(see docs/backups.md for the tables); 0 keeps them forever.",
    )
    retention_overrides: str = Field(
        default="",
        description='Per-table months overriding retention_months, e.g. "short_link_clicks=6,delivery_callbacks=3" '
        "(0 keeps that table forever).",
    )
    archive_dir: Path | None = Field(
        default=None, description="Where retention writes its Parquet files. Unset: <data_dir>/archive."
    )
    _generated_secret: str | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone, so a typo fails at start-up
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def session_secret(self) -> str:
        """The configured secret, or this installation's generated one (created on first use).

        Read once per Settings object: public pages hash every scan and click with it.
        """
        if self.secret_key:
            return self.secret_key
        if self._generated_secret is None:
            path = self.data_dir / "secret_key"
            if not path.exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48))
            self._generated_secret = path.read_text().strip()
        return self._generated_secret

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own `Settings`)."""
    return Settings()
