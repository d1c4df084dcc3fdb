"""Schema migrations (Alembic), callable from the CLI and the app start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
"""The scripts sit beside the package, not in it: siyu must run from a checkout or an editable
install (`pip install -e .`; the Docker image also sets PYTHONPATH=/app), never a plain wheel."""


class MigrationsMissing(RuntimeError):
    """The migration scripts are not where this installation of siyu expects them."""


def alembic_config(url: str) -> Config:
    """Alembic configuration for the database at `url`, with siyu's migration scripts."""
    if not MIGRATIONS_DIR.is_dir():
        raise MigrationsMissing(
            f"migration scripts not found at {MIGRATIONS_DIR}: install siyu from its source tree with "
            "`pip install -e .` (or put the source tree first on PYTHONPATH), not as a plain wheel"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at `engine` up to `revision`."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database at `engine` down to `revision`."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
