"""performance (stub: being built)."""
