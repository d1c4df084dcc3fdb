"""Journey API and console tests use the console fixtures (app over the rolled-back transaction, logins)."""

from __future__ import annotations

from tests.web.conftest import app, client, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]
