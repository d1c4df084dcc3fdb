"""Authentication and authorisation: users, roles, scopes, API tokens, the acting principal."""
