"""overview (stub: being built)."""
