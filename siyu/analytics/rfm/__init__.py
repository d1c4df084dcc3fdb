"""rfm (stub: being built)."""
