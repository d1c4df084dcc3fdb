"""planning (stub: being built)."""
