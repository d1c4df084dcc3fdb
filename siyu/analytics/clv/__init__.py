"""clv (stub: being built)."""
