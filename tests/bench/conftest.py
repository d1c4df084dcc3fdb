"""Bench tests prove the benches work and report the agreed shape; they are not timings."""

from __future__ import annotations

import pytest

from bench import harness


@pytest.fixture(autouse=True)
def _relaxed_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Throwaway PostgreSQL bench databases skip the per-commit flush inside the suite."""
    monkeypatch.setattr(harness, "RELAXED_COMMIT", True)
