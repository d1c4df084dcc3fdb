"""Add-by-phone tests use the console fixtures (an app that does not follow redirects, logins)."""

from tests.web.conftest import app, client, user_with_role, workspace  # noqa: F401
