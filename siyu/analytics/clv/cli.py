"""`siyu analytics clv` (stub: being built)."""

from __future__ import annotations


def clv() -> None:
    """Fit BG/NBD and Gamma-Gamma to an orders CSV."""
    raise SystemExit("not built yet")
