"""Listeners and background jobs of community groups."""

from __future__ import annotations
