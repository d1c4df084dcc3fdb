"""Background jobs and listeners of referrals (imported by `siyu.tasks` and the app)."""

from __future__ import annotations
