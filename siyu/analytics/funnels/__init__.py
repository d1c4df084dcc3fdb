"""funnels (stub: being built)."""
