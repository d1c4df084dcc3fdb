"""retention (stub: being built)."""
