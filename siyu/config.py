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
    log_level: str = "INFO"
    log_json: bool = Field(default=True, description="Structured JSON logs (one object a line).")
    default_locale: str = Field(default="zh_CN", description="Console language when the user chose none.")
    phone_region: str = Field(default="CN", description="Region assumed for phone numbers without +code.")
    session_cookie_secure: bool = Field(default=False, description="Send the console cookie over HTTPS only.")
    sqlite_busy_timeout_ms: int = 30_000
    worker_threads: int = Field(default=2, description="In-process worker threads in embedded mode.")
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
