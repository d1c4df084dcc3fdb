"""Listeners and background jobs of community challenges."""

from __future__ import annotations
