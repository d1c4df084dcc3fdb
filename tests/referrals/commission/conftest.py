"""The console fixtures (app, client, workspace, users by role) for the commission pages."""

from tests.web.conftest import app, client, user_with_role, workspace  # noqa: F401 - fixtures
