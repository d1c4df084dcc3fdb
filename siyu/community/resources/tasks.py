"""Listeners and background jobs of community resources."""

from __future__ import annotations
