"""Console fixtures (app, browser-like client, a workspace and users per role) for the overview tests."""

from tests.web.conftest import app, client, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]
