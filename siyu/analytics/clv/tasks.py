"""Background jobs of CLV (stub: being built)."""
