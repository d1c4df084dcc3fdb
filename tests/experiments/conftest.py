"""The console and API fixtures (one app serves both) for the experiments tests."""

from __future__ import annotations

from tests.web.conftest import app, client, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]
